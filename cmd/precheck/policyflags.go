package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/spf13/cobra"

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
func (f *policyFlags) register(cmd *cobra.Command, defaultEngine string) {
	cmd.Flags().StringVar(&f.path, "policy", "", "a policy directory or bundle (.tar.gz) layered over the embedded default")
	cmd.Flags().BoolVar(&f.noDefault, "no-default", false, "use --policy alone, without the embedded default under it")
	if defaultEngine != "" {
		choiceFlag(cmd, &f.engine, "engine", "engine", defaultEngine, engineNames(), "evaluation engine")
	}
}

// positional takes the policy from the verb's one optional argument (precheck test rego/), as --policy
// would: an argument is never silently ignored.
func (f *policyFlags) positional(_ *cobra.Command, args []string) error {
	switch {
	case len(args) > 1:
		return usageError(fmt.Sprintf("unexpected argument %q (give one policy: a directory or a bundle)", args[1]))
	case len(args) == 1 && f.path != "":
		return usageError(fmt.Sprintf("the policy is given twice, as --policy %s and as the argument %s", f.path, args[0]))
	case len(args) == 1:
		f.path = args[0]
	}
	return nil
}

// load reads the policy the flags name: the embedded default, with --policy layered on top (or alone).
// The default is the one read once per process: for verbs that only evaluate it and read its catalog.
func (f *policyFlags) load() (*policy.Policy, error) { return f.read(true) }

// loadOwn is load for the verbs that hand the policy's modules to OPA's compiler, tester or analyses
// (test, lint, build, check --explain, serve): those rewrite or lazily annotate the modules they walk, so
// the default they get is their own copy, never the one shared with other runs in this process.
func (f *policyFlags) loadOwn() (*policy.Policy, error) { return f.read(false) }

func (f *policyFlags) read(shared bool) (*policy.Policy, error) {
	switch {
	case f.path == "" && f.noDefault:
		return nil, usageError("--no-default needs --policy")
	case f.path == "" && shared:
		return defaultPolicy()
	case f.path == "":
		return policy.Default()
	}
	// A path that is not there is a mistake in the command line, not a broken policy.
	if _, err := os.Stat(f.path); err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return nil, usageError(fmt.Sprintf("--policy %s: %v", f.path, err))
	}
	if f.noDefault {
		return policy.Load(f.path)
	}
	return policy.LoadWithOverrides(f.path)
}

// newEngine prepares the loaded policy with the chosen engine.
func (f *policyFlags) newEngine(ctx context.Context, p *policy.Policy, opts ...policy.Option) (*policy.Engine, error) {
	b, err := backendFor(ctx, f.engine, p)
	if err != nil {
		return nil, err
	}
	return policy.New(ctx, p, append(opts, policy.WithBackend(b))...)
}

// backends are the engines a command can choose with --engine.
var backends = map[string]func() policy.Backend{
	"rego": policy.Rego,
	"wasm": func() policy.Backend { return wasm.Backend(wasm.Config{}) },
}

func engineNames() []string { return slices.Sorted(maps.Keys(backends)) }

// The embedded default policy is read, and prepared for each engine, once per process: parsing it and
// compiling it (to WebAssembly, for the wasm engine) is most of what a check costs, and nothing of it
// depends on the command line. A verb's own clock (--at) is not part of the preparation: an Evaluator
// takes the time with each evaluation.
var defaultPolicy = sync.OnceValues(policy.Default)

// defaultEvaluators are the shared default's evaluators by engine. One lock for all: preparing reads
// (copies) the shared policy's modules, and one preparation at a time keeps them from racing each other.
var defaultEvaluators struct {
	mu sync.Mutex
	m  map[string]policy.Evaluator
}

// backendFor is the backend for an engine and a policy: for the embedded default, one that hands every
// Engine the evaluator prepared once; for any other policy, a new backend.
func backendFor(ctx context.Context, name string, p *policy.Policy) (policy.Backend, error) {
	newBackend, ok := backends[name]
	if !ok {
		return nil, usageError(fmt.Sprintf("unknown engine %q (want %s)", name, engineNames()))
	}
	if def, err := defaultPolicy(); err != nil || p != def {
		return newBackend(), nil
	}
	defaultEvaluators.mu.Lock()
	defer defaultEvaluators.mu.Unlock()
	ev := defaultEvaluators.m[name]
	if ev == nil {
		// Not under the caller's context: the evaluator outlives this command's run (a failure is not
		// kept, so a cancelled preparation is tried again by the next).
		var err error
		if ev, err = newBackend().Prepare(context.WithoutCancel(ctx), p); err != nil {
			return nil, err
		}
		if defaultEvaluators.m == nil {
			defaultEvaluators.m = map[string]policy.Evaluator{}
		}
		defaultEvaluators.m[name] = ev
	}
	return preparedBackend{name: name, eval: ev}, nil
}

// preparedBackend is a backend whose Evaluator is prepared already and shared: Engine.Close leaves it open
// for the next Engine.
type preparedBackend struct {
	name string
	eval policy.Evaluator
}

func (b preparedBackend) Name() string { return b.name }

func (b preparedBackend) Prepare(context.Context, *policy.Policy) (policy.Evaluator, error) {
	return keptOpen{b.eval}, nil
}

type keptOpen struct{ policy.Evaluator }

func (keptOpen) Close(context.Context) error { return nil }
