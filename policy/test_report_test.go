package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/precheck/precheck/policy"
)

// A passing test carries no trace: OPA's runner traces every table test (a partial object of cases) to tell
// its cases apart, and `precheck test --format json` would print those events, hundreds a test. A failing
// test keeps its trace, which is how the report shows the expression it failed at.
func TestReportKeepsTracesOfFailuresOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	report, err := p.Test(ctx, policy.TestOptions{Run: "test_master_key_id$"}) // a table test
	if err != nil || len(report.Results) != 1 || !report.Passed() {
		t.Fatalf("%+v, %v", report, err)
	}
	if r := report.Results[0]; r.Trace != nil {
		t.Errorf("the passing %s carries %d trace events", r.Name, len(r.Trace))
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fails_test.rego"), []byte(`package precheck.fails_test

test_cases[name] if {
	some name, want in {"one": 1, "two": 2}
	want == 3
}
`), 0o644)
	over, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	report, err = over.Test(ctx, policy.TestOptions{})
	if err != nil || len(report.Results) != 1 || report.Passed() {
		t.Fatalf("%+v, %v", report, err)
	}
	if r := report.Results[0]; len(r.Trace) == 0 {
		t.Errorf("the failing %s lost its trace", r.Name)
	}
}
