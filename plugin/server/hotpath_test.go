package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// BenchmarkDecideHotPath measures what the server adds to a decision: POST /v1/precheck through the
// server's handler (body buffering, the in-flight limit, the document's reading, the evaluation, metrics,
// the decision log, the answer), without a network, so that allocations per request are what the server
// does. Compare with BenchmarkDecision's engine figures for the decision alone.
func BenchmarkDecideHotPath(b *testing.B) {
	doc := example(b, "allowed-api-example.json")
	for _, c := range []struct {
		name    string
		backend func() policy.Backend
		log     bool
	}{
		{"wasm", func() policy.Backend { return wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()}) }, false},
		{"wasm/decision-log", func() policy.Backend { return wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()}) }, true},
		{"rego/decision-log", regoBackend, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := server.Config{Source: defaultSource(), Backend: c.backend}
			if c.log {
				cfg.DecisionLog = io.Discard
			}
			s, err := server.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			// The request's context can end, as a server's always can.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/precheck", bytes.NewReader(doc))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// TestDecisionLogNamesTheCall: the decision log's identifiers come from the reading of the document
// (policy.Document.RequestIDs, no second parse), for a document and for one in OPA's envelope alike.
func TestDecisionLogNamesTheCall(t *testing.T) {
	t.Parallel()
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, DecisionLog: &log})
	doc := example(t, "denied-guest-agent-too-old.json")
	for _, body := range [][]byte{doc, []byte(`{"input": ` + string(doc) + `}`), []byte(`{"request": {"project_id": 7}}`)} {
		if status, out, _ := postJSON(t, s.URL+"/v1/precheck", body); status != 200 {
			t.Fatalf("%d %s", status, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log:\n%s", log.String())
	}
	for i, want := range [][2]any{
		{"89cd04f168b84af6be287f71730fdb4b", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"},
		{"89cd04f168b84af6be287f71730fdb4b", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"},
		{nil, nil}, // not a string: left out
	} {
		var entry map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &entry); err != nil {
			t.Fatal(err)
		}
		if entry["project_id"] != want[0] || entry["cluster_id"] != want[1] {
			t.Errorf("line %d: %v", i, entry)
		}
	}
}

// TestEngineStateIsShown: /readyz and /metrics say which code the wasm engine runs and what its watchdog
// did (fast, not degraded, here).
func TestEngineStateIsShown(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{Source: defaultSource(), Backend: func() policy.Backend { return wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()}) }})
	_, body := get(t, s.URL+"/readyz")
	var r struct {
		EngineState policy.State `json:"engine_state"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.EngineState.Backend != "wasm" || r.EngineState.Code != "fast" || r.EngineState.Degraded {
		t.Errorf("readyz %s (%v)", body, err)
	}
	_, metrics := get(t, s.URL+"/metrics")
	for _, line := range []string{"precheck_engine_interruptible 0", "precheck_engine_degraded 0", "precheck_engine_runaways_total 0", "precheck_engine_abandoned_total 0"} {
		if !bytes.Contains(metrics, []byte("\n"+line+"\n")) {
			t.Errorf("/metrics has no line %q", line)
		}
	}
}
