package main

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/precheck/precheck/policy"
)

func newTestCmd(e *env) *cobra.Command {
	var (
		pf        policyFlags
		coverage  bool
		threshold float64
		runOnly   string
		verbose   bool
		format    string
	)
	cmd := &cobra.Command{
		Use:   "test [POLICY]",
		Short: "Run the policy's Rego unit tests (--coverage for coverage)",
		Long: `Run the policy's Rego unit tests with the project's builtins, and print failures with the
expression each failed at; with --coverage, the lines the tests reach per file (--threshold fails below
a percentage).

The policy is the embedded default, or POLICY (or --policy), a directory or bundle layered over it.
Under an override, only the override's own tests run (the default's assume the default's data), and
coverage counts only the override's own files. An override with no tests of its own (data only) passes
with a note.

Exit codes: 0 every test passed, 1 a test failed, no test matched --run, or coverage is below
--threshold, 2 bad usage, 3 policy error.`,
		Example: `  precheck test --coverage
  precheck test rego/ --run versions -v
  precheck test --policy examples/policies/regulated-bank --coverage --threshold 90`,
		Args: pf.positional,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := regexp.Compile(runOnly); err != nil {
				return usageError(fmt.Sprintf("--run %q: %v", runOnly, err))
			}
			p, err := pf.load()
			if err != nil {
				return err
			}
			files, err := ownFiles(&pf)
			if err != nil {
				return err
			}
			report, err := p.Test(cmd.Context(), policy.TestOptions{Coverage: coverage, Run: runOnly, CoverFiles: files})
			if err != nil {
				return err
			}
			if report.NoOwnTests {
				fmt.Fprintf(e.stderr, "precheck: note: %s has no Rego tests of its own; nothing to run (the default's tests assume the default's data)\n", pf.path)
				return nil
			}
			if format == "json" {
				err = writeJSON(e.stdout, struct {
					Results  []*tester.Result `json:"results"`
					Coverage *cover.Report    `json:"coverage,omitempty"`
				}{report.Results, report.Coverage})
			} else {
				err = writeTestText(e, report, verbose)
			}
			if err != nil {
				return err
			}
			switch {
			case len(report.Results) == 0:
				fmt.Fprintln(e.stderr, "precheck: no tests found")
				return silentExit(exitDenied)
			case !report.Passed():
				return silentExit(exitDenied)
			case report.Coverage != nil && report.Coverage.Coverage < threshold:
				fmt.Fprintf(e.stderr, "precheck: coverage %.1f%% is below the threshold of %.1f%%\n", report.Coverage.Coverage, threshold)
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd, "")
	cmd.Flags().BoolVar(&coverage, "coverage", false, "report which lines of the policy the tests reach")
	cmd.Flags().Float64Var(&threshold, "threshold", 0, "with --coverage: fail when coverage is below this percentage")
	cmd.Flags().StringVar(&runOnly, "run", "", "only tests whose name matches this regular expression")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only failures")
	choiceFlag(cmd, &format, "format", "format", "text", []string{"json", "text"}, "output")
	return cmd
}

// ownFiles are the Rego files of an override directory, as the policy names its modules: the files whose
// coverage counts under --policy. Nil (every file) for the default, a policy given alone (--no-default),
// or a bundle, which holds a whole policy.
func ownFiles(pf *policyFlags) ([]string, error) {
	if pf.path == "" || pf.noDefault {
		return nil, nil
	}
	if st, err := os.Stat(pf.path); err != nil || !st.IsDir() {
		return nil, nil
	}
	var files []string
	err := filepath.WalkDir(pf.path, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".rego") && !strings.HasSuffix(path, "_test.rego") {
			rel, err := filepath.Rel(pf.path, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, &policy.PolicyError{Source: pf.path, Problems: []string{err.Error()}}
	}
	if files == nil {
		files = []string{} // a data-only override: none of the files is its own
	}
	return files, nil
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
