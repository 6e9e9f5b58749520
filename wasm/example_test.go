package wasm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// The wasm engine runs the trusted policy's fast code under any context: a caller with a deadline gets
// ctx.Err() when it passes, and a watchdog switches a policy whose evaluation runs past RunawayLimit to
// the interruptible code (see Config). The engine's State says which code it runs.
func ExampleConfig_runawayLimit() {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{RunawayLimit: 2 * time.Second})))
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	deadline, cancel := context.WithTimeout(ctx, 5*time.Second) // as the SDK's HTTP client sets one
	defer cancel()
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, err := engine.CheckJSON(deadline, doc)
	if err != nil {
		panic(err)
	}
	s := engine.State()
	fmt.Println(d.Allowed, s.Code, s.Degraded)
	// Output: true fast false
}

// A command line keeps the compiled policy across runs in the user's cache directory: the second process
// skips OPA's compiler and wazero's.
func ExampleOpenCache() {
	dir, err := os.MkdirTemp("", "precheck-cache")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cache, err := wasm.OpenCache(filepath.Join(dir, "precheck")) // the CLI: os.UserCacheDir()/precheck
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{Cache: cache})))
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)
	entries, _ := filepath.Glob(filepath.Join(cache.Dir(), "precheck-*"))
	fmt.Println(len(entries), "entry")
	// Output: 1 entry
}

// An embedder that runs wazero itself can hand the engine a compilation cache of its own, here one on disk:
// the policy's machine code is written there, and a later process that loads the same module finds it.
func ExampleConfig_machineCode() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "machine-code")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		panic(err)
	}
	defer cache.Close(ctx)
	p, err := policy.Load("testdata/tiny") // a small policy, quick to compile; the default works the same
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{MachineCode: cache})))
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, err := engine.CheckJSON(ctx, doc)
	if err != nil {
		panic(err)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	fmt.Println(d.Allowed, len(written) > 0)
	// Output: true true
}
