package main

import (
	"github.com/spf13/cobra"

	"github.com/precheck/precheck/policy"
)

// newCapabilitiesCmd prints the capabilities file that lets stock OPA tools (opa check --capabilities, the
// editor integrations, Regal) accept precheck's policies; rego/capabilities.json is its output.
func newCapabilitiesCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "capabilities [-o FILE]",
		Short: "Print OPA's capabilities with the dws.* builtins, for OPA's tools and Regal",
		Long: `Print the capabilities of the OPA version precheck is built with and the declarations of
precheck's dws.* builtins: what opa check --capabilities, Regal and the editors need to accept
precheck's policies. rego/capabilities.json is this output.

Exit codes: 0 printed, 2 bad usage or an unwritable -o.`,
		Example: `  precheck capabilities -o rego/capabilities.json`,
		Args:    noArgs("the output file is -o FILE"),
		RunE: func(*cobra.Command, []string) error {
			data, err := policy.CapabilitiesJSON()
			if err != nil {
				return err
			}
			if out == "" {
				_, err = e.stdout.Write(data)
				return err
			}
			return writeFileAtomic(out, data)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the capabilities to this file (mode 0644) instead of stdout")
	return cmd
}
