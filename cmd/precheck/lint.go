package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLintCmd(e *env) *cobra.Command {
	var pf policyFlags
	cmd := &cobra.Command{
		Use:   "lint [POLICY]",
		Short: "Strict checks of a policy: unused names, missing METADATA, codes without rules or tests",
		Long: `Strict checks of a policy: OPA's strict compiler (unused variables and imports, ...) and
precheck's own checks (rule packages without a title, rules without a description, codes the tests name
that no rule has, rules no test names). Warnings are printed but do not fail.

The policy is the embedded default, or POLICY (or --policy), a directory or bundle layered over it.

Exit codes: 0 clean, 1 a lint problem, 2 bad usage, 3 a policy that does not load.`,
		Example: `  precheck lint
  precheck lint rego/
  precheck lint --policy examples/policies/regulated-bank`,
		Args: pf.positional,
		RunE: func(*cobra.Command, []string) error {
			p, err := pf.load()
			if err != nil {
				return err
			}
			// The tests are parsed when a verb needs them: one that does not parse fails the load here.
			if _, err := p.Tests(); err != nil {
				return err
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
				return silentExit(exitDenied)
			}
			fmt.Fprintf(e.stdout, "%s: no lint problems (%d rules)\n", p.Source(), len(p.Catalog().Rules))
			return nil
		},
	}
	pf.register(cmd, "")
	return cmd
}
