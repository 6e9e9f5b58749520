package rego_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
)

// TestRegoUnitTests runs the default policy's Rego unit tests as compliance teams run them, `precheck test
// --coverage`, and holds them to 95 % coverage of the policy. The command runs as `go run` builds it,
// without the race detector: under -race OPA's evaluator is some ten times slower, which made this the
// suite's slowest test, and the Rego tests exercise no concurrency of precheck's (the engines' tests do).
func TestRegoUnitTests(t *testing.T) {
	t.Parallel()
	cmd := policytest.GoCommand("run", "../cmd/precheck", "test", "--coverage", "--format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: a test failed
		t.Fatalf("go run ../cmd/precheck test: %v\n%s", err, stderr.Bytes())
	}
	var report struct {
		Results []struct {
			Package    string          `json:"package"`
			Name       string          `json:"name"`
			Fail       bool            `json:"fail"`
			Error      json.RawMessage `json:"error"`
			SubResults map[string]struct {
				Fail bool `json:"fail"`
			} `json:"sub_results"`
		} `json:"results"`
		Coverage struct {
			Coverage float64 `json:"coverage"`
		} `json:"coverage"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("precheck test --format json: %v\n%s%s", err, out, stderr.Bytes())
	}
	for _, r := range report.Results {
		if r.Fail || len(r.Error) > 0 {
			t.Errorf("%s.%s failed: %s", r.Package, r.Name, r.Error)
			for name, sub := range r.SubResults {
				if sub.Fail {
					t.Errorf("    case %q failed", name)
				}
			}
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("precheck test exits 1 with no failed test:\n%s", stderr.Bytes())
	}
	if len(report.Results) < 50 {
		t.Errorf("only %d Rego tests ran", len(report.Results))
	}
	if c := report.Coverage.Coverage; c < 95 {
		t.Errorf("Rego tests cover %.1f%% of the policy, want at least 95%%", c)
	}
}

// TestLint: the default policy passes `precheck lint`, which among other things wants every rule named by a
// Rego test.
func TestLint(t *testing.T) {
	t.Parallel()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range p.Lint() {
		t.Error(problem)
	}
}
