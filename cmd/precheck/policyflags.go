package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// policyFlags are the flags every verb that loads a policy shares.
type policyFlags struct {
	path      string
	noDefault bool
	engine    string
}

// register adds the flags; with a defaultEngine ("rego", "wasm") it adds --engine too.
func (f *policyFlags) register(fs *flag.FlagSet, defaultEngine string) {
	fs.StringVar(&f.path, "policy", "", "a policy directory or bundle (.tar.gz) layered over the embedded default")
	fs.BoolVar(&f.noDefault, "no-default", false, "use --policy alone, without the embedded default under it")
	if defaultEngine != "" {
		fs.StringVar(&f.engine, "engine", defaultEngine, "evaluation engine: "+engineNames())
	}
}

// load reads the policy the flags name: the embedded default, with --policy layered on top (or alone).
func (f *policyFlags) load() (*policy.Policy, error) {
	switch {
	case f.path == "" && f.noDefault:
		return nil, usageError("--no-default needs --policy")
	case f.path == "":
		return policy.Default()
	case f.noDefault:
		return policy.Load(f.path)
	default:
		return policy.LoadWithOverrides(f.path)
	}
}

// engine prepares the loaded policy with the chosen engine.
func (f *policyFlags) newEngine(ctx context.Context, p *policy.Policy, opts ...policy.Option) (*policy.Engine, error) {
	b, ok := backends[f.engine]
	if !ok {
		return nil, usageError(fmt.Sprintf("unknown engine %q (want %s)", f.engine, engineNames()))
	}
	return policy.New(ctx, p, append(opts, policy.WithBackend(b()))...)
}

// backends are the engines a command can choose with --engine.
var backends = map[string]func() policy.Backend{
	"rego": policy.Rego,
	"wasm": func() policy.Backend { return wasm.Backend(wasm.Config{}) },
}

func engineNames() string { return formatNames(backends) }
