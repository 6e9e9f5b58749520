package opahost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/precheck/precheck/policy/policytest"
)

// compileWasm compiles Rego sources (file name -> text) to an OPA wasm
// module with the given entrypoints. caps nil means the capabilities of
// this OPA version (which include builtins registered by the test binary).
// Optimisation stays at 0: higher levels have crashed the wasm target.
func compileWasm(tb testing.TB, sources map[string]string, caps *ast.Capabilities, entrypoints ...string) []byte {
	tb.Helper()
	return buildWasm(tb, sources, caps, false, entrypoints)
}

// compileWasmPrint is compileWasm with print() statements kept.
func compileWasmPrint(tb testing.TB, sources map[string]string, entrypoints ...string) []byte {
	tb.Helper()
	return buildWasm(tb, sources, nil, true, entrypoints)
}

// built keeps the modules the tests compiled, by what they were compiled from: OPA's compiler is slow
// (more so under the race detector), and several tests compile the same policy.
var built sync.Map

func buildWasm(tb testing.TB, sources map[string]string, caps *ast.Capabilities, print bool, entrypoints []string) []byte {
	tb.Helper()
	key := fmt.Sprintf("%v %p %v %q", sources, caps, print, entrypoints)
	if m, ok := built.Load(key); ok {
		return m.([]byte)
	}
	m := compileModule(tb, sources, caps, print, entrypoints)
	built.Store(key, m)
	return m
}

func compileModule(tb testing.TB, sources map[string]string, caps *ast.Capabilities, print bool, entrypoints []string) []byte {
	tb.Helper()
	dir := tb.TempDir()
	for name, text := range sources {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	c := compile.New().
		WithTarget(compile.TargetWasm).
		WithEntrypoints(entrypoints...).
		WithOptimizationLevel(0).
		WithEnablePrintStatements(print).
		WithPaths(dir)
	if caps != nil {
		c = c.WithCapabilities(caps)
	}
	if err := c.Build(context.Background()); err != nil {
		tb.Fatalf("compiling %v to wasm: %v", entrypoints, err)
	}
	mods := c.Bundle().WasmModules
	if len(mods) != 1 || len(mods[0].Raw) == 0 {
		tb.Fatalf("compiled bundle has %d wasm modules, want 1", len(mods))
	}
	return mods[0].Raw
}

// inmemStore is an in-memory store holding data, for topdown.
func inmemStore(data map[string]any) storage.Store { return inmem.NewFromObject(data) }

// withoutRace are the tests that compile and decide on one goroutine: most of the package's time under
// the race detector went to wazero compiling their modules, so they run in a binary built without it. The
// tests of the pool, the watchdog and cancellation stay here.
var withoutRace = policytest.WithoutRace{
	"TestDifferentialAgainstTopdown", "TestBuiltins", "TestLoadFailsOnUnservedBuiltins", "TestMemoryLimit",
	"TestEntrypointsAndABI", "TestPrint", "TestValueTextThroughModule", "TestCompilationCache",
}

func TestWithoutRace(t *testing.T) { withoutRace.Run(t) }

// machineCode keeps wazero's machine code for the tests' loads, across test binaries and runs (see
// policytest.MachineCodeDir): compiling a module takes a second under the race detector, and many tests
// load one module.
var machineCode = policytest.MachineCode()

// mustLoad loads module and closes it when the test ends. Unless cfg says otherwise, the machine code
// comes from machineCode.
func mustLoad(tb testing.TB, module, data []byte, cfg Config) *Policy {
	tb.Helper()
	if cfg.CompilationCache == nil {
		cfg.CompilationCache = machineCode
	}
	if cfg.InterruptibleCache == nil {
		cfg.InterruptibleCache = machineCode
	}
	p, err := Load(context.Background(), module, data, cfg)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return p
}

// entrypoint returns the id of a named entrypoint or fails the test.
func entrypoint(tb testing.TB, p *Policy, name string) int32 {
	tb.Helper()
	id, ok := p.Entrypoints()[name]
	if !ok {
		tb.Fatalf("entrypoint %q not in %v", name, p.Entrypoints())
	}
	return id
}
