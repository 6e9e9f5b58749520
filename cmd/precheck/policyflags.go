package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	// noCache and cacheDir say where the wasm engine keeps what compiling costs across processes.
	noCache  bool
	cacheDir string
	// warn receives what the flags could not honour but need not stop for (an unusable cache).
	warn io.Writer
}

// register adds the flags; with a defaultEngine ("rego", "wasm") it adds --engine too.
func (f *policyFlags) register(cmd *cobra.Command, defaultEngine string) {
	cmd.Flags().StringVar(&f.path, "policy", "", "a policy directory or bundle (.tar.gz) layered over the embedded default")
	cmd.Flags().BoolVar(&f.noDefault, "no-default", false, "use --policy alone, without the embedded default under it")
	if defaultEngine != "" {
		choiceFlag(cmd, &f.engine, "engine", "engine", defaultEngine, engineNames(), "evaluation engine")
		cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "where the wasm engine keeps the compiled policy across runs (default: the user's cache directory, precheck/)")
		cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "compile the policy for the wasm engine afresh, without reading or writing the cache")
	}
	f.warn = cmd.ErrOrStderr()
}

// wasmCache opens the cache the flags name, or none. A cache is a speed-up, never a reason to fail: one
// that cannot be opened is reported and the policy is compiled as if --no-cache were given.
func (f *policyFlags) wasmCache() *wasm.Cache {
	if f.noCache || f.engine != "wasm" {
		return nil
	}
	dir := f.cacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			f.warnf("no cache for the compiled policy: %v", err)
			return nil
		}
		dir = filepath.Join(base, "precheck")
	}
	c, err := wasm.OpenCache(dir)
	if err != nil {
		f.warnf("no cache for the compiled policy: %v", err)
		return nil
	}
	return c
}

func (f *policyFlags) warnf(format string, args ...any) {
	if f.warn != nil {
		fmt.Fprintf(f.warn, "precheck: warning: "+format+"\n", args...)
	}
}

// backend is the backend the flags choose, with wasm's settings (cache, and cfg for serve's watchdog).
func (f *policyFlags) backend(cfg wasm.Config) (policy.Backend, error) {
	switch f.engine {
	case "rego":
		return policy.Rego(), nil
	case "wasm":
		cfg.Cache = f.wasmCache()
		return wasm.Backend(cfg), nil
	}
	return nil, usageError(fmt.Sprintf("unknown engine %q (want %s)", f.engine, engineNames()))
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
// The default is the one read once per process; a Policy is safe to share (its modules are handed out as
// copies), so the verbs that compile, test, lint or explain it use the same one.
func (f *policyFlags) load() (*policy.Policy, error) {
	switch {
	case f.path == "" && f.noDefault:
		return nil, usageError("--no-default needs --policy")
	case f.path == "":
		return defaultPolicy()
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
	b, err := f.backendFor(ctx, p)
	if err != nil {
		return nil, err
	}
	return policy.New(ctx, p, append(opts, policy.WithBackend(b))...)
}

// engineNames are the engines a command can choose with --engine (policyFlags.backend makes them).
func engineNames() []string { return []string{"rego", "wasm"} }

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
func (f *policyFlags) backendFor(ctx context.Context, p *policy.Policy) (policy.Backend, error) {
	name := f.engine
	if def, err := defaultPolicy(); err != nil || p != def {
		return f.backend(wasm.Config{})
	}
	defaultEvaluators.mu.Lock()
	defer defaultEvaluators.mu.Unlock()
	ev := defaultEvaluators.m[name]
	if ev == nil {
		// Only now the backend (and the cache it opens): an evaluator prepared already needs neither.
		newBackend, err := f.backend(wasm.Config{})
		if err != nil {
			return nil, err
		}
		// Not under the caller's context: the evaluator outlives this command's run (a failure is not
		// kept, so a cancelled preparation is tried again by the next).
		if ev, err = newBackend.Prepare(context.WithoutCancel(ctx), p); err != nil {
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
