package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	regofs "github.com/precheck/precheck/rego"
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
	policy.WithoutRace.Delegate(t)
	t.Parallel()
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
func TestWithoutRace(t *testing.T) { policy.WithoutRace.Run(t) }

func TestCheckCorpus(t *testing.T) {
	policy.WithoutRace.Delegate(t)
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	e := newEngine(t, policy.WithLimits(policy.Limits{MaxBytes: 64, MaxDepth: 2}))
	if _, err := e.CheckJSON(context.Background(), []byte(`{"request": {"body": {}}}`)); err == nil || !strings.Contains(err.Error(), "limit of 2 levels") {
		t.Errorf("depth 3 under a limit of 2: %v", err)
	}
	if _, err := e.CheckJSON(context.Background(), []byte(`{"tenant": {"class": "`+strings.Repeat("x", 64)+`"}}`)); err == nil || !strings.Contains(err.Error(), "limit of 64 bytes") {
		t.Errorf("over 64 bytes: %v", err)
	}
}

func TestBrokenBodyInInput(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	_, err := e.Check(context.Background(), &policy.Input{Request: policy.Request{Body: json.RawMessage(`{"encrypt":`)}})
	var inErr *policy.InputError
	if !errors.As(err, &inErr) || !strings.Contains(err.Error(), "request.body") {
		t.Fatalf("err = %v, want an InputError naming request.body", err)
	}
}

func TestClosedEngine(t *testing.T) {
	t.Parallel()
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

// fixedBackend evaluates every document to a copy of one decision, to test what the Engine does with a
// decision as a backend returns it.
type fixedBackend struct{ d policy.Decision }

func (fixedBackend) Name() string { return "fixed" }

func (b fixedBackend) Prepare(context.Context, *policy.Policy) (policy.Evaluator, error) {
	return b, nil
}

func (b fixedBackend) Eval(context.Context, *policy.Document, time.Time) (*policy.Decision, error) {
	d := b.d
	d.Violations = slices.Clone(b.d.Violations)
	d.Warnings = slices.Clone(b.d.Warnings)
	return &d, nil
}

func (fixedBackend) Close(context.Context) error { return nil }

// The Engine checks the decision's order and does not fix it up: the policy sorts (rego/decision.rego), so
// that any OPA host gets the same bytes.
func TestEngineChecksTheDecision(t *testing.T) {
	t.Parallel()
	deny := func(code, field, msg, actual string) policy.Violation {
		return policy.Violation{Code: code, Field: field, Severity: policy.SeverityDeny, Message: msg, Actual: actual}
	}
	warn := func(code, field string) policy.Violation {
		return policy.Violation{Code: code, Field: field, Severity: policy.SeverityWarn, Message: "m"}
	}
	refusal := &policy.APIError{Status: 409, ErrorCode: "X-A-001", ErrorMsg: "m"}
	for _, tc := range []struct {
		name string
		d    policy.Decision
		err  string // "" when the decision must pass unchanged
	}{
		{name: "sorted", d: policy.Decision{Violations: []policy.Violation{
			deny("X-A-001", "b", "m", "2"), deny("X-A-001", "b", "m", "3"), deny("X-A-001", "c", "a", ""), deny("X-B-001", "a", "a", ""),
		}, Warnings: []policy.Violation{warn("X-A-002", "a"), warn("X-A-002", "b")}, Error: refusal}},
		{name: "no findings at all", d: policy.Decision{Allowed: true}},
		{name: "violations out of code order", d: policy.Decision{Violations: []policy.Violation{
			deny("X-B-001", "a", "m", ""), deny("X-A-001", "a", "m", ""),
		}, Error: refusal}, err: "violations are not sorted by code, field, message and actual: [0] X-B-001 on a comes before [1] X-A-001 on a"},
		{name: "violations out of actual order", d: policy.Decision{Violations: []policy.Violation{
			deny("X-A-001", "a", "m", "b"), deny("X-A-001", "a", "m", "a"),
		}, Error: refusal}, err: "violations are not sorted"},
		{name: "warnings out of field order", d: policy.Decision{Allowed: true, Warnings: []policy.Violation{
			warn("X-A-002", "b"), warn("X-A-002", "a"),
		}}, err: "warnings are not sorted by code, field, message and actual: [0] X-A-002 on b comes before [1] X-A-002 on a"},
		{name: "allowed with violations", d: policy.Decision{Allowed: true, Violations: []policy.Violation{
			deny("X-A-001", "a", "m", ""),
		}, Error: refusal}, err: "inconsistent decision"},
		{name: "refusal without an error", d: policy.Decision{Violations: []policy.Violation{
			deny("X-A-001", "a", "m", ""),
		}}, err: "a refusal without an error"},
		{name: "warning of severity deny", d: policy.Decision{Allowed: true, Warnings: []policy.Violation{
			deny("X-A-001", "a", "m", ""),
		}}, err: "malformed warning"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Default()
			if err != nil {
				t.Fatal(err)
			}
			e, err := policy.New(context.Background(), p, policy.WithBackend(fixedBackend{tc.d}))
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.CheckJSON(context.Background(), []byte(`{}`))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "policy "+p.Source()+": ") {
					t.Fatalf("err = %v, want one naming policy %s and saying %q", err, p.Source(), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.d
			if want.Violations == nil {
				want.Violations = []policy.Violation{} // nil becomes []: a representation, not a fix-up
			}
			if want.Warnings == nil {
				want.Warnings = []policy.Violation{}
			}
			if !reflect.DeepEqual(*d, want) {
				t.Fatalf("the engine changed the decision:\n got %+v\nwant %+v", *d, want)
			}
		})
	}
}

// TestRefusesWithoutData: the default policy's Rego without its data refuses on the rego engine too, and
// what it returns passes the Engine's checks. (wasm/differential_test.go does the same for the module.)
func TestRefusesWithoutData(t *testing.T) {
	policy.WithoutRace.Delegate(t)
	t.Parallel()
	dir := t.TempDir()
	files, err := fs.Glob(regofs.FS, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, _ := fs.ReadFile(regofs.FS, f)
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			d, err := e.CheckJSON(context.Background(), c.Input)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || !slices.ContainsFunc(d.Violations, func(v policy.Violation) bool {
				return v.Code == "PRECHECK-DATA-001" && v.Field == "data.precheck.config"
			}) {
				t.Fatalf("without data: %+v", d)
			}
		})
	}
}
