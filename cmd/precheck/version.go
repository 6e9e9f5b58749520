package main

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/spf13/cobra"
)

// versions is what `precheck version` reports: what the binary is, and what it decides with.
type versions struct {
	Precheck string `json:"precheck"`
	// Policy is the embedded default policy's revision.
	Policy string `json:"policy"`
	OPA    string `json:"opa"`
	Wazero string `json:"wazero"`
	Go     string `json:"go"`
}

// buildVersions reads the versions from what the Go toolchain recorded in the binary: precheck's own is the
// main module's version (a go install of a tagged module), else its version control revision (a build
// from a clone), else "devel"; the libraries' are the modules it was built with.
var buildVersions = sync.OnceValue(func() versions {
	v := versions{Precheck: "devel", OPA: "unknown", Wazero: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Precheck = bi.Main.Version
	} else {
		var revision, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if revision != "" {
			v.Precheck = "devel+" + revision
			if modified == "true" {
				v.Precheck += "-dirty"
			}
		}
	}
	for _, dep := range bi.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		switch dep.Path {
		case "github.com/open-policy-agent/opa":
			v.OPA = dep.Version
		case "github.com/tetratelabs/wazero":
			v.Wazero = dep.Version
		}
	}
	return v
})

func newVersionCmd(e *env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print precheck's version, the embedded policy's revision, and the OPA, wazero and Go versions",
		Long: `Print precheck's version (the module's version for a go install of a release, else the
revision it was built from, else "devel"), the revision of the policy embedded in the binary, and the
versions of OPA, wazero and Go it was built with.

Exit codes: 0 printed, 2 bad usage, 3 the embedded policy does not load.`,
		Example: `  precheck version
  precheck version --format json`,
		Args: noArgs("version takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			v := buildVersions()
			p, err := defaultPolicy()
			if err != nil {
				return err
			}
			v.Policy = p.Revision()
			if format == "json" {
				return writeJSON(e.stdout, v)
			}
			pr := &printer{w: e.stdout}
			pr.printf("precheck %s\npolicy   %s (embedded default)\nopa      %s\nwazero   %s\ngo       %s\n", v.Precheck, v.Policy, v.OPA, v.Wazero, v.Go)
			return pr.err
		},
	}
	choiceFlag(cmd, &format, "format", "format", "text", []string{"json", "text"}, "output")
	return cmd
}
