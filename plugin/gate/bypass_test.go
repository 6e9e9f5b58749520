package gate_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/plugin/gate/upstreamtest"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// The bypass suite: the gate in front of upstreams that read requests the ways real servers do
// (upstreamtest), over a corpus of requests that servers read differently, for both engines, with fail-open
// off and on. The oracle asks the same engine about every call an upstream would execute: no upstream may
// ever execute a call the policy refuses.

// bypassEngine is one engine with its oracle.
type bypassEngine struct {
	name   string
	engine *policy.Engine
	oracle *upstreamtest.Oracle
}

// bypassEngines are built once per test binary: the default policy with the compliance team's data
// classifying upstreamtest.RegulatedProject as regulated, on the rego and the wasm backend.
var bypassEngines = sync.OnceValues(func() ([]bypassEngine, error) {
	p, err := upstreamtest.Policy()
	if err != nil {
		return nil, err
	}
	var out []bypassEngine
	for _, b := range []struct {
		name string
		opts []policy.Option
	}{{"rego", nil}, {"wasm", []policy.Option{policy.WithBackend(wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()}))}}} {
		e, err := policy.New(context.Background(), p, b.opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		out = append(out, bypassEngine{name: b.name, engine: e, oracle: &upstreamtest.Oracle{Checker: e, Facts: upstreamtest.Facts()}})
	}
	return out, nil
})

func mustBypassEngines(t testing.TB) []bypassEngine {
	t.Helper()
	es, err := bypassEngines()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func bypassGate(next http.RoundTripper, e bypassEngine, failOpen bool) *gate.Gate {
	opts := []gate.Option{gate.WithFacts(upstreamtest.Facts())}
	if failOpen {
		opts = append(opts, gate.WithFailOpen())
	}
	return gate.New(next, e.engine, opts...)
}

func bypassFailOpenName(on bool) string {
	if on {
		return "fail-open"
	}
	return "fail-closed"
}

// bypassSummary collects which corpus classes got through, to say so once at the end.
type bypassSummary struct {
	mu      sync.Mutex
	classes map[string][]string // class -> configurations/cases
}

func (s *bypassSummary) add(config string, c upstreamtest.Case) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.classes == nil {
		s.classes = map[string][]string{}
	}
	s.classes[c.Class] = append(s.classes[c.Class], config+": "+c.Name)
}

func (s *bypassSummary) report(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.classes) == 0 {
		return
	}
	var b strings.Builder
	for _, class := range slices.Sorted(maps.Keys(s.classes)) {
		fmt.Fprintf(&b, "\n  %-10s %3d bypasses, e.g. %s", class, len(s.classes[class]), s.classes[class][0])
	}
	t.Errorf("refused calls reached an upstream, by corpus class:%s", b.String())
}

// bypassDescribe is an answer for a failure message.
func bypassDescribe(status int, body []byte) string {
	if len(body) > 300 {
		body = append(body[:300:300], "..."...)
	}
	return fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
}

// TestGateNoBypass sends the corpus through the gate as an http.RoundTripper in front of the raw upstream
// server.
func TestGateNoBypass(t *testing.T) {
	t.Parallel()
	corpus := upstreamtest.Corpus()
	var summary bypassSummary
	t.Cleanup(func() { summary.report(t) })
	for _, e := range mustBypassEngines(t) {
		for _, failOpen := range []bool{false, true} {
			config := e.name + "/" + bypassFailOpenName(failOpen)
			t.Run(config, func(t *testing.T) {
				t.Parallel()
				up := upstreamtest.NewServer()
				t.Cleanup(up.Close)
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				g := bypassGate(tr, e, failOpen)
				for _, c := range corpus {
					t.Run(c.Name, func(t *testing.T) {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						status, body := c.Do(ctx, g, up.URL)
						answer := bypassDescribe(status, body)
						if err := up.Quiesce(ctx, tr); err != nil {
							t.Fatal(err)
						}
						bypasses := e.oracle.Bypasses(ctx, up.Take())
						for _, b := range bypasses {
							t.Errorf("%s\n  the gate answered the client: %s", b, answer)
						}
						if len(bypasses) > 0 {
							summary.add(config, c)
						}
					})
				}
			})
		}
	}
}

// TestGateBypassControls: the suite cannot pass by refusing everything. Each tenant's allowed call is
// forwarded and executed exactly once with the very bytes sent; a GET of the cluster's details and a DELETE
// with a body pass through.
func TestGateBypassControls(t *testing.T) {
	t.Parallel()
	for _, e := range mustBypassEngines(t) {
		for _, failOpen := range []bool{false, true} {
			t.Run(e.name+"/"+bypassFailOpenName(failOpen), func(t *testing.T) {
				t.Parallel()
				up := upstreamtest.NewServer()
				t.Cleanup(up.Close)
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				g := bypassGate(tr, e, failOpen)
				for _, c := range upstreamtest.Controls() {
					t.Run(c.Name, func(t *testing.T) {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						status, body := c.Do(ctx, g, up.URL)
						if err := up.Quiesce(ctx, tr); err != nil {
							t.Fatal(err)
						}
						got := up.Take()
						for _, b := range e.oracle.Bypasses(ctx, got) {
							t.Error(b)
						}
						if err := c.Check(got, status, body); err != nil {
							t.Error(err)
						}
					})
				}
			})
		}
	}
}

// TestBypassCorpusIsLive: every case of the corpus, sent with no gate in front, both as a Go client sends it
// and byte for byte, makes some modelled server execute a call the policy refuses; and no control does. A
// case that is no attack on an ungated upstream tests nothing of the gate.
func TestBypassCorpusIsLive(t *testing.T) {
	t.Parallel()
	e := mustBypassEngines(t)[0]
	up := upstreamtest.NewServer()
	t.Cleanup(up.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range upstreamtest.Corpus() {
		direct := upstreamtest.NewTransport()
		c.Do(ctx, direct, "http://dws.test")
		if len(e.oracle.Bypasses(ctx, direct.Take())) == 0 {
			t.Errorf("%s: sent by a Go client, no modelled server executes a call the policy refuses", c.Name)
		}
		if status, body := c.Exchange(ctx, up.Addr(), "dws.test"); status == 0 {
			t.Errorf("%s: %s", c.Name, body)
		}
		if err := up.Quiesce(ctx); err != nil {
			t.Fatal(err)
		}
		if len(e.oracle.Bypasses(ctx, up.Take())) == 0 {
			t.Errorf("%s: sent byte for byte, no modelled server executes a call the policy refuses", c.Name)
		}
	}
	for _, c := range upstreamtest.Controls() {
		direct := upstreamtest.NewTransport()
		status, body := c.Do(ctx, direct, "http://dws.test")
		got := direct.Take()
		for _, b := range e.oracle.Bypasses(ctx, got) {
			t.Errorf("%s: %s", c.Name, b)
		}
		if err := c.Check(got, status, body); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}

// FuzzGateNoBypass fuzzes the method, the request-target, the header fields and the body through the gate in
// front of the in-process upstream, with the same oracle, on both engines. Its seeds are the corpus and the
// controls, so CI runs them. It runs the gate with fail-open only: that gate forwards whatever the
// fail-closed one does and more (the facts never fail here, so the difference can only be a request that
// makes the gate fail), and TestGateNoBypass runs both.
func FuzzGateNoBypass(f *testing.F) {
	for _, c := range upstreamtest.Corpus() {
		f.Add(c.Method, c.Target, c.HeaderLines(), c.Body, c.Opaque, c.Tunnel)
	}
	for _, c := range upstreamtest.Controls() {
		f.Add(c.Method, c.Target, c.HeaderLines(), c.Body, c.Opaque, c.Tunnel)
	}
	engines := mustBypassEngines(f)
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte, opaque bool, tunnel []byte) {
		c := upstreamtest.Case{Method: method, Target: target, Header: upstreamtest.ParseHeaderLines(headers), Body: body, Opaque: opaque, Tunnel: tunnel}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.NewRequest("http://dws.test"); err != nil {
			return // not a request a Go client can send
		}
		for _, e := range engines {
			up := upstreamtest.NewTransport()
			answer := bypassDescribe(c.Do(ctx, bypassGate(up, e, true), "http://dws.test"))
			for _, b := range e.oracle.Bypasses(ctx, up.Take()) {
				t.Errorf("%s/fail-open: %s\n  the gate answered the client: %s", e.name, b, answer)
			}
		}
	})
}
