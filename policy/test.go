package policy

import (
	"context"
	"maps"
	"path"
	"regexp"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestOptions configures Policy.Test.
type TestOptions struct {
	Coverage bool   // also measure which lines of the policy the tests reach
	Run      string // only tests whose name matches this regular expression (all when empty)
	// CoverFiles, when not nil, are the only module files whose lines coverage counts, named relative to
	// the policy's root (rules/bank.rego): an override's own files, so that a threshold measures the
	// override's tests on its own rules, not on the default's files they never meant to test.
	CoverFiles []string
}

// TestReport is the outcome of a policy's Rego unit tests.
type TestReport struct {
	Results  []*tester.Result
	Coverage *cover.Report // nil unless TestOptions.Coverage
	// NoOwnTests is set when the policy's top layer has no tests of its own (an override of data alone):
	// nothing ran, and nothing failed.
	NoOwnTests bool
}

// Passed reports whether every test passed (and there was at least one).
func (r *TestReport) Passed() bool {
	if len(r.Results) == 0 {
		return false
	}
	for _, res := range r.Results {
		if !res.Pass() {
			return false
		}
	}
	return true
}

// Test runs the policy's Rego unit tests (the test_ rules of its *_test.rego files) with OPA's test runner,
// the project's builtins included. Under overrides, only the overrides' tests run: the default's assume the
// default's data.
func (p *Policy) Test(ctx context.Context, opts TestOptions) (*TestReport, error) {
	tests, err := p.testsParsed()
	if err != nil {
		return nil, err
	}
	if len(tests.own) == 0 {
		return &TestReport{NoOwnTests: true}, nil
	}
	modules := p.Modules()
	maps.Copy(modules, parsed(tests.files))
	newRunner := func() *tester.Runner {
		return tester.NewRunner().
			SetStore(inmem.NewFromObject(p.data)). // copies the data on write
			SetModules(modules).
			SetPrefixMatchers(tests.own...)
	}
	runner := newRunner().Filter(opts.Run)
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
		runner.SetCoverageQueryTracer(cov)
	}
	report := &TestReport{}
	results, err := runTests(ctx, runner)
	if err != nil {
		return nil, NewPolicyError(p.source, err)
	}
	// Tracing every test is slow; re-run only the failures with tracing, so that the report can show the
	// expression each one failed at.
	// OPA's runner traces a table test (a partial object of cases) to tell its cases apart, even when it
	// passes; only a failure's trace is ever read, and JSON output would print hundreds of events a test.
	var failed []string
	for _, res := range results {
		if res.Pass() {
			res.Trace = nil
		} else {
			failed = append(failed, regexp.QuoteMeta(res.Package+"."+res.Name))
		}
	}
	if len(failed) > 0 {
		traced, err := runTests(ctx, newRunner().
			EnableTracing(true).
			Filter("^("+strings.Join(failed, "|")+")$"))
		if err == nil && len(traced) == len(failed) {
			kept := results[:0]
			for _, res := range results {
				if res.Pass() {
					kept = append(kept, res)
				}
			}
			results = append(kept, traced...)
		}
	}
	report.Results = results
	if cov != nil {
		report.Coverage = policyCoverage(cov.Report(p.Modules()), p.Modules(), opts.CoverFiles)
	}
	return report, nil
}

func runTests(ctx context.Context, runner *tester.Runner) ([]*tester.Result, error) {
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, err
	}
	var results []*tester.Result
	for res := range ch {
		results = append(results, res)
	}
	return results, nil
}

// policyCoverage keeps the coverage of the policy's own files, not of the tests that exercise them, and,
// when only is not nil, of those files alone.
func policyCoverage(r cover.Report, modules map[string]*ast.Module, only []string) *cover.Report {
	keep := map[string]bool{}
	for _, f := range only {
		keep[path.Clean("/"+f)] = true
	}
	out := &cover.Report{Files: map[string]*cover.FileReport{}}
	for file, fr := range r.Files {
		if _, ok := modules[file]; !ok {
			continue
		}
		// Module names are relative to the policy root, with or without a leading slash (a tarball's).
		if only != nil && !keep[path.Clean("/"+file)] {
			continue
		}
		out.Files[file] = fr
		out.CoveredLines += fr.CoveredLines
		out.NotCoveredLines += fr.NotCoveredLines
	}
	if total := out.CoveredLines + out.NotCoveredLines; total > 0 {
		out.Coverage = 100 * float64(out.CoveredLines) / float64(total)
	}
	return out
}
