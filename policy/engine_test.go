package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy"
)

// corpusCase is one file of testdata/corpus: an input document and the decision's outline it must get.
type corpusCase struct {
	Name  string
	Input json.RawMessage `json:"input"`
	Want  struct {
		Allowed    bool     `json:"allowed"`
		Violations []string `json:"violations"` // "CODE field"
		Warnings   []string `json:"warnings"`
	} `json:"want"`
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	var cases []corpusCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c corpusCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.Name = strings.TrimSuffix(filepath.Base(f), ".json")
		cases = append(cases, c)
	}
	return cases
}

func newEngine(t testing.TB, opts ...policy.Option) *policy.Engine {
	t.Helper()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(context.Background(), p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func outline(vs []policy.Violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Code+" "+v.Field)
	}
	slices.Sort(out)
	return out
}

func TestCheckJSONCorpus(t *testing.T) {
	e := newEngine(t)
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			d, err := e.CheckJSON(context.Background(), c.Input)
			if err != nil {
				t.Fatal(err)
			}
			checkOutline(t, d, c)
		})
	}
}

// TestCheckCorpus decides the same corpus through the Go Input type, as an embedder builds it. Documents
// with members of the wrong type cannot be an Input; they are the JSON API's to test.
func TestCheckCorpus(t *testing.T) {
	e := newEngine(t)
	tried := 0
	for _, c := range loadCorpus(t) {
		var in policy.Input
		dec := json.NewDecoder(strings.NewReader(string(c.Input)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			continue
		}
		tried++
		t.Run(c.Name, func(t *testing.T) {
			d, err := e.Check(context.Background(), &in)
			if err != nil {
				t.Fatal(err)
			}
			checkOutline(t, d, c)
		})
	}
	if tried < 25 {
		t.Fatalf("only %d corpus documents fit the Input type", tried)
	}
}

func checkOutline(t *testing.T, d *policy.Decision, c corpusCase) {
	t.Helper()
	if d.Allowed != c.Want.Allowed {
		t.Errorf("allowed = %v, want %v (violations %v)", d.Allowed, c.Want.Allowed, outline(d.Violations))
	}
	if got := outline(d.Violations); !slices.Equal(got, c.Want.Violations) && !(len(got) == 0 && len(c.Want.Violations) == 0) {
		t.Errorf("violations = %q, want %q", got, c.Want.Violations)
	}
	if got := outline(d.Warnings); !slices.Equal(got, c.Want.Warnings) {
		t.Errorf("warnings = %q, want %q", got, c.Want.Warnings)
	}
	if d.Allowed != (d.Error == nil) {
		t.Errorf("allowed = %v but error = %+v", d.Allowed, d.Error)
	}
	for _, v := range append(slices.Clone(d.Violations), d.Warnings...) {
		if v.Message == "" || v.Remediation == "" || strings.HasPrefix(v.Code, "DWS") {
			t.Errorf("incomplete finding %+v", v)
		}
	}
}

func TestDecisionJSONShape(t *testing.T) {
	e := newEngine(t)
	data, err := os.ReadFile("testdata/corpus/denied-agent-8.3.0.199.json")
	if err != nil {
		t.Fatal(err)
	}
	var c corpusCase
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	d, err := e.CheckJSON(context.Background(), c.Input)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(out, &generic); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"code": "PRECHECK-VER-002", "field": "cluster.guest_agent_version", "severity": "deny",
		"message":     "guestAgent version 8.3.0.199 is below the required 8.3.0.200",
		"expected":    ">= 8.3.0.200",
		"actual":      "8.3.0.199",
		"remediation": "upgrade the cluster's guestAgent to a version >= 8.3.0.200, then retry",
	}
	got := generic["violations"].([]any)[0].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("violation %s = %v, want %v", k, got[k], v)
		}
	}
	if e := generic["error"].(map[string]any); e["status"] != 409.0 || e["error_code"] != "PRECHECK-VER-002" {
		t.Errorf("error = %v", e)
	}
	for _, key := range []string{"allowed", "violations", "warnings", "error"} {
		if _, ok := generic[key]; !ok {
			t.Errorf("decision has no %q member: %s", key, out)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEngine(t)
	deep := `{"request": {"body": ` + strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 42)
	huge := `{"request": {"project_id": "` + strings.Repeat("a", 1<<20) + `"}}`
	tests := []struct {
		name, doc string
		want      string
		line, col int
	}{
		{"malformed", "{\n  \"request\": {\n    \"project_id\": \"x\",,\n  }\n}", "malformed JSON", 3, 23},
		{"truncated", `{"request": {`, "malformed JSON", 1, 13},
		{"trailing garbage", `{} x`, "malformed JSON", 1, 4},
		{"empty", ``, "malformed JSON", 1, 1},
		{"not an object", `[1, 2]`, "must be a JSON object", 0, 0},
		{"a string", `"request"`, "must be a JSON object", 0, 0},
		{"too deep", deep, "nested deeper than the limit of 32 levels", 1, 172},
		{"too big", huge, "over the limit of 1048576 bytes", 0, 0},
		{"invalid UTF-8", "{\n \"tenant\": {\"class\": \"\xff\"}}", "not valid UTF-8", 2, 23},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.CheckJSON(context.Background(), []byte(tt.doc))
			var inErr *policy.InputError
			if !errors.As(err, &inErr) {
				t.Fatalf("got decision %+v, error %v; want an InputError", d, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if inErr.Line != tt.line || inErr.Column != tt.col {
				t.Errorf("error at %d:%d, want %d:%d (%v)", inErr.Line, inErr.Column, tt.line, tt.col, err)
			}
		})
	}
}

func TestLimitsAreConfigurable(t *testing.T) {
	e := newEngine(t, policy.WithLimits(policy.Limits{MaxBytes: 64, MaxDepth: 2}))
	if _, err := e.CheckJSON(context.Background(), []byte(`{"request": {"body": {}}}`)); err == nil || !strings.Contains(err.Error(), "limit of 2 levels") {
		t.Errorf("depth 3 under a limit of 2: %v", err)
	}
	if _, err := e.CheckJSON(context.Background(), []byte(`{"tenant": {"class": "`+strings.Repeat("x", 64)+`"}}`)); err == nil || !strings.Contains(err.Error(), "limit of 64 bytes") {
		t.Errorf("over 64 bytes: %v", err)
	}
}

func TestBrokenBodyInInput(t *testing.T) {
	e := newEngine(t)
	_, err := e.Check(context.Background(), &policy.Input{Request: policy.Request{Body: json.RawMessage(`{"encrypt":`)}})
	var inErr *policy.InputError
	if !errors.As(err, &inErr) || !strings.Contains(err.Error(), "request.body") {
		t.Fatalf("err = %v, want an InputError naming request.body", err)
	}
}

func TestClosedEngine(t *testing.T) {
	p, _ := policy.Default()
	e, err := policy.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckJSON(context.Background(), []byte(`{}`)); !errors.Is(err, policy.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}
