package wasm

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"

	"github.com/precheck/precheck/policy"
)

// Module is a policy compiled to an OPA WebAssembly module, with the OPA bundle that carries it.
type Module struct {
	wasm   []byte
	bundle *bundle.Bundle
}

// Compile compiles the policy to an OPA WebAssembly module with one entrypoint, precheck/decision. It runs
// in-process with OPA's compiler; the project's builtins (dws.version_*) are declared in the capabilities
// (they are registered with OPA when package policy loads), so the module imports them by name.
//
// Optimisation stays off: OPA's -O has crashed its wasm target.
func Compile(ctx context.Context, p *policy.Policy) (*Module, error) {
	c := compile.New().
		WithTarget(compile.TargetWasm).
		WithBundle(p.Bundle()).
		WithEntrypoints(policy.Entrypoint).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithRegoVersion(ast.RegoV1).
		WithRevision(p.Revision()).
		WithOptimizationLevel(0).
		WithOutput(io.Discard)
	if err := c.Build(ctx); err != nil {
		return nil, policy.NewPolicyError(p.Source(), err)
	}
	b := c.Bundle()
	if len(b.WasmModules) != 1 {
		return nil, fmt.Errorf("wasm: compiling policy %s gave %d modules, want 1", p.Source(), len(b.WasmModules))
	}
	// The compiler leaves its rewritten modules in the bundle; ship the sources as they were written, so
	// that the bundle is also a policy precheck (or OPA) can load as Rego.
	b.Modules = p.Bundle().Modules
	return &Module{wasm: b.WasmModules[0].Raw, bundle: b}, nil
}

// Wasm returns the module's bytes (precheck.wasm). Its entrypoint is precheck/decision; see the package
// documentation for the imports a host must provide.
func (m *Module) Wasm() []byte { return m.wasm }

// WriteBundle writes an OPA bundle (.tar.gz) that any OPA WebAssembly host can load: /.manifest (the
// revision and the wasm entrypoint), /data.json, /policy.wasm, and the Rego sources.
func (m *Module) WriteBundle(w io.Writer) error {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*m.bundle); err != nil {
		return fmt.Errorf("wasm: writing bundle: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
