package rego_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/rego"
)

// TestRegoUnitTests runs the default policy's Rego unit tests as part of go test.
func TestRegoUnitTests(t *testing.T) {
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	report, err := p.Test(context.Background(), policy.TestOptions{Coverage: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range report.Results {
		if !r.Pass() {
			t.Errorf("%s.%s failed (%s): %v", r.Package, r.Name, r.Location, r.Error)
			for name, sub := range r.SubResults {
				if sub.Fail {
					t.Errorf("    case %q failed", name)
				}
			}
		}
	}
	if len(report.Results) < 50 {
		t.Errorf("only %d Rego tests ran", len(report.Results))
	}
	if report.Coverage.Coverage < 95 {
		t.Errorf("Rego tests cover %.1f%% of the policy, want at least 95%%", report.Coverage.Coverage)
	}
}

// TestEveryRuleHasATest: each rule code of the catalog appears in some *_test.rego.
func TestEveryRuleHasATest(t *testing.T) {
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	files, _ := fs.Glob(rego.FS, "*_test.rego")
	for _, f := range files {
		data, _ := fs.ReadFile(rego.FS, f)
		tests.Write(data)
	}
	for _, r := range p.Catalog().Rules {
		if !strings.Contains(tests.String(), `"`+r.Code+`"`) {
			t.Errorf("rule %s (%s:%d) has no Rego unit test naming it", r.Code, r.File, r.Line)
		}
	}
}
