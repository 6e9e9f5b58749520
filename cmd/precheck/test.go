package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["test"] = verb{summary: "run the policy's Rego unit tests (--coverage for coverage)", run: runTest}
}

func runTest(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck test", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, "")
	coverage := fs.Bool("coverage", false, "report which lines of the policy the tests reach")
	threshold := fs.Float64("threshold", 0, "with --coverage: fail when coverage is below this percentage")
	runOnly := fs.String("run", "", "only tests whose name matches this regular expression")
	verbose := fs.Bool("v", false, "list every test, not only failures")
	format := fs.String("format", "text", "output: text|json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		return fail(e, usageError(fmt.Sprintf("unknown format %q (want text|json)", *format)))
	}
	p, err := pf.load()
	if err != nil {
		return fail(e, err)
	}
	report, err := p.Test(ctx, policy.TestOptions{Coverage: *coverage, Run: *runOnly})
	if err != nil {
		return fail(e, err)
	}
	if *format == "json" {
		err = writeJSON(e.stdout, struct {
			Results  []*tester.Result `json:"results"`
			Coverage *cover.Report    `json:"coverage,omitempty"`
		}{report.Results, report.Coverage})
	} else {
		err = writeTestText(e, report, *verbose)
	}
	if err != nil {
		return fail(e, err)
	}
	switch {
	case len(report.Results) == 0:
		fmt.Fprintln(e.stderr, "precheck: no tests found")
		return exitDenied
	case !report.Passed():
		return exitDenied
	case report.Coverage != nil && report.Coverage.Coverage < *threshold:
		fmt.Fprintf(e.stderr, "precheck: coverage %.1f%% is below the threshold of %.1f%%\n", report.Coverage.Coverage, *threshold)
		return exitDenied
	}
	return exitAllowed
}

func writeTestText(e *env, report *policy.TestReport, verbose bool) error {
	ch := make(chan *tester.Result, len(report.Results))
	for _, r := range report.Results {
		ch <- r
	}
	close(ch)
	rep := tester.PrettyReporter{Output: e.stdout, Verbose: verbose, FailureLine: true}
	if err := rep.Report(ch); err != nil {
		return err
	}
	if report.Coverage == nil {
		return nil
	}
	p := &printer{w: e.stdout}
	p.printf("\ncoverage: %.1f%% of %d lines\n", report.Coverage.Coverage, report.Coverage.CoveredLines+report.Coverage.NotCoveredLines)
	for _, file := range slices.Sorted(maps.Keys(report.Coverage.Files)) {
		f := report.Coverage.Files[file]
		var missed []string
		for _, r := range f.NotCovered {
			span := fmt.Sprint(r.Start.Row)
			if r.End.Row != r.Start.Row {
				span = fmt.Sprintf("%d-%d", r.Start.Row, r.End.Row)
			}
			if !slices.Contains(missed, span) { // a line can hold several uncovered ranges
				missed = append(missed, span)
			}
		}
		line := fmt.Sprintf("  %-20s %5.1f%%", file, f.Coverage)
		if len(missed) > 0 {
			line += "  not covered: lines " + strings.Join(missed, ", ")
		}
		p.printf("%s\n", line)
	}
	return p.err
}
