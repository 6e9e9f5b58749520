package rego_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/cover"

	"github.com/precheck/precheck/policy"
)

// shards is how many runs of OPA's test runner share the Rego unit tests: the runner is sequential and,
// with coverage under the race detector, slow, so the tests are split by package into runs side by side,
// and their coverage merged.
const shards = 2

// TestRegoUnitTests runs the default policy's Rego unit tests as part of go test, and holds them to 95 %
// coverage of the policy.
func TestRegoUnitTests(t *testing.T) {
	t.Parallel()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	var packages []string
	for _, m := range p.Tests() {
		packages = append(packages, m.Package.Path.String())
	}
	slices.Sort(packages)
	packages = slices.Compact(packages)
	reports := make([]*policy.TestReport, shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for i := range shards {
		var mine []string
		for j := i; j < len(packages); j += shards {
			mine = append(mine, regexp.QuoteMeta(packages[j]))
		}
		if len(mine) == 0 {
			continue
		}
		wg.Go(func() {
			reports[i], errs[i] = p.Test(context.Background(), policy.TestOptions{Coverage: true, Run: "^(" + strings.Join(mine, "|") + `)\.`})
		})
	}
	wg.Wait()
	ran := 0
	var coverage []*cover.Report
	for i, report := range reports {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if report == nil {
			continue
		}
		coverage = append(coverage, report.Coverage)
		for _, r := range report.Results {
			ran++
			if !r.Pass() {
				t.Errorf("%s.%s failed (%s): %v", r.Package, r.Name, r.Location, r.Error)
				for name, sub := range r.SubResults {
					if sub.Fail {
						t.Errorf("    case %q failed", name)
					}
				}
			}
		}
	}
	if ran < 50 {
		t.Errorf("only %d Rego tests ran", ran)
	}
	if c := mergedCoverage(coverage); c < 95 {
		t.Errorf("Rego tests cover %.1f%% of the policy, want at least 95%%", c)
	}
}

// mergedCoverage is the coverage of the runs together, as OPA counts it for one run: the lines any run
// covered, of the lines a run covered or reported not covered.
func mergedCoverage(reports []*cover.Report) float64 {
	type line struct {
		file string
		row  int
	}
	covered, seen := map[line]bool{}, map[line]bool{}
	for _, r := range reports {
		for file, fr := range r.Files {
			for _, rg := range fr.Covered {
				for row := rg.Start.Row; row <= rg.End.Row; row++ {
					covered[line{file, row}], seen[line{file, row}] = true, true
				}
			}
			for _, rg := range fr.NotCovered {
				for row := rg.Start.Row; row <= rg.End.Row; row++ {
					seen[line{file, row}] = true
				}
			}
		}
	}
	if len(seen) == 0 {
		return 0
	}
	return 100 * float64(len(covered)) / float64(len(seen))
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
