package rego_test

import (
	"context"
	"testing"

	"github.com/precheck/precheck/policy"
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

// TestLint: the default policy passes `precheck lint`, which among other things wants every rule named by a
// Rego test.
func TestLint(t *testing.T) {
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range p.Lint() {
		t.Error(problem)
	}
}
