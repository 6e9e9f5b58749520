package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["capabilities"] = verb{summary: "print OPA's capabilities with the dws.* builtins, for OPA's tools and Regal", run: runCapabilities}
}

// runCapabilities prints the capabilities file that lets stock OPA tools (opa check --capabilities, the
// editor integrations, Regal) accept precheck's policies; rego/capabilities.json is its output.
func runCapabilities(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck capabilities", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "write the capabilities to this file (mode 0644) instead of stdout")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(e, usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0))))
	}
	data, err := policy.CapabilitiesJSON()
	if err != nil {
		return fail(e, err)
	}
	if *out == "" {
		_, err = e.stdout.Write(data)
	} else {
		err = os.WriteFile(*out, data, 0o644)
	}
	if err != nil {
		return fail(e, err)
	}
	return exitAllowed
}
