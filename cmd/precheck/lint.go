package main

import (
	"context"
	"flag"
	"fmt"
)

func init() {
	verbs["lint"] = verb{summary: "strict checks of a policy: unused names, missing METADATA, codes without rules or tests", run: runLint}
}

func runLint(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck lint", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, "")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	p, err := pf.load()
	if err != nil {
		return fail(e, err)
	}
	problems := p.Lint()
	for _, problem := range problems {
		fmt.Fprintln(e.stdout, problem)
	}
	// Warnings are printed but do not fail: what they describe is legal, and may be intended.
	for _, w := range p.LintWarnings() {
		fmt.Fprintln(e.stdout, "warning: "+w)
	}
	if len(problems) > 0 {
		fmt.Fprintf(e.stderr, "precheck: %d lint problem(s) in %s\n", len(problems), p.Source())
		return exitDenied
	}
	fmt.Fprintf(e.stdout, "%s: no lint problems (%d rules)\n", p.Source(), len(p.Catalog().Rules))
	return exitAllowed
}
