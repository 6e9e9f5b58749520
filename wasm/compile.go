package wasm

import (
	"bytes"
	"context"
	"errors"
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
	return compileBundle(ctx, p, p.Bundle())
}

func compileBundle(ctx context.Context, p *policy.Policy, src *bundle.Bundle) (*Module, error) {
	c := compile.New().
		WithTarget(compile.TargetWasm).
		WithBundle(src).
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
// revision and the wasm entrypoint), /data.json, /policy.wasm, and the Rego sources. The bytes depend on
// the policy alone: module names are relative to the policy root, and OPA's writer sets no times, owners
// or host names and writes the files in a fixed order.
func (m *Module) WriteBundle(w io.Writer) error {
	return m.writeBundle(w, *m.bundle)
}

// Signing is the key a bundle is signed with, as `opa build --signing-key` signs it: a JWT in
// /.signatures.json over the digest of every file, which OPA (and `precheck serve --bundle-key`) verify
// with the public key.
type Signing struct {
	// Key is the PEM private key (RSA or ECDSA; PKCS #1, PKCS #8 or SEC 1), or the secret for HS256/384/512.
	Key []byte
	// Algorithm is the JWA name (RS256, PS384, ES512, HS256, ...); "" is RS256, OPA's default.
	Algorithm string
	// KeyID goes into the token's kid header and keyid claim; "" is "default", OPA's default. A verifier
	// configured with a key id of its own (as precheck serve always is: --bundle-key-id) looks that one up
	// instead, so it is the key that has to match, not the name.
	KeyID string
}

// DefaultKeyID is the key id OPA (and precheck serve) verify a bundle under unless told otherwise.
const DefaultKeyID = "default"

// Check reports whether s can sign a bundle: a known algorithm and a key that fits it.
func (s Signing) Check() error {
	_, _, err := s.config()
	return err
}

// config is OPA's signing configuration for s. The key is tried on an empty list of files first, so that a
// key that is not PEM, or does not fit the algorithm, is an error about the key before anything is built.
func (s Signing) config() (*bundle.SigningConfig, string, error) {
	if len(s.Key) == 0 {
		return nil, "", errors.New("no signing key")
	}
	sc := bundle.NewSigningConfig(string(s.Key), s.Algorithm, "")
	keyID := s.KeyID
	if keyID == "" {
		keyID = DefaultKeyID
	}
	if _, err := sc.GetPrivateKey(); err != nil {
		return nil, "", err
	}
	if _, err := bundle.GenerateSignedToken(nil, sc, keyID); err != nil {
		return nil, "", fmt.Errorf("key does not sign with %s: %w", sc.Algorithm, err)
	}
	return sc, keyID, nil
}

// WriteSignedBundle writes the bundle WriteBundle writes, with /.signatures.json made by OPA's own bundle
// signing code, as `opa build --signing-key` makes it.
func (m *Module) WriteSignedBundle(w io.Writer, s Signing) error {
	sc, keyID, err := s.config()
	if err != nil {
		return fmt.Errorf("wasm: signing bundle: %w", err)
	}
	b := *m.bundle // GenerateSignature sets b.Signatures only: the module's own bundle stays unsigned
	if err := b.GenerateSignature(sc, keyID, false); err != nil {
		return fmt.Errorf("wasm: signing bundle: %w", err)
	}
	return m.writeBundle(w, b)
}

func (m *Module) writeBundle(w io.Writer, b bundle.Bundle) error {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		return fmt.Errorf("wasm: writing bundle: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
