package policy

import (
	"strings"
	"sync"

	"github.com/hashicorp/go-version"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// The builtins DWS versions need. DWS versions have four segments (8.3.0.200), which neither Rego's
// semver builtins nor string comparison order correctly; hashicorp/go-version does (8.3.0.1999 > 8.3.0.200,
// 8.3.0 < 8.3.0.200, a pre-release below its release).
//
// They are registered with OPA's global registries when this package is loaded, so every engine sees them
// through the same names: the rego engine, `precheck test`, the compiler that builds the wasm module (as
// imports) and the wasm host (which serves imports from OPA's builtin registry).
var (
	// VersionCompare is dws.version_compare(a, b): -1, 0 or 1 as a is below, equal to or above b, and
	// undefined when either is not a version string.
	VersionCompare = &rego.Function{
		Name:        "dws.version_compare",
		Description: "Compares two DWS versions with hashicorp/go-version: -1, 0 or 1; undefined if either is not a version.",
		Decl: types.NewFunction(
			types.Args(types.Named("a", types.A), types.Named("b", types.A)),
			types.Named("result", types.N),
		),
	}

	// VersionValid is dws.version_valid(a): whether a is a version string go-version can parse.
	VersionValid = &rego.Function{
		Name:        "dws.version_valid",
		Description: "Reports whether a is a version string hashicorp/go-version can parse.",
		Decl: types.NewFunction(
			types.Args(types.Named("a", types.A)),
			types.Named("result", types.B),
		),
	}
)

func init() {
	rego.RegisterBuiltin2(VersionCompare, versionCompare)
	rego.RegisterBuiltin1(VersionValid, versionValid)
}

// The arguments are declared as any (not string) because the policy passes input members as they came,
// and a wrong type must give undefined or false, never an error: an error is undefined in topdown but fails
// the evaluation on the wasm host, and both engines must decide alike.

func versionCompare(_ rego.BuiltinContext, a, b *ast.Term) (*ast.Term, error) {
	va, ok := parseVersion(a)
	if !ok {
		return nil, nil
	}
	vb, ok := parseVersion(b)
	if !ok {
		return nil, nil
	}
	return ast.InternedTerm(va.Compare(vb)), nil
}

func versionValid(_ rego.BuiltinContext, a *ast.Term) (*ast.Term, error) {
	_, ok := parseVersion(a)
	return ast.InternedTerm(ok), nil
}

func parseVersion(t *ast.Term) (*version.Version, bool) {
	s, ok := t.Value.(ast.String)
	if !ok {
		return nil, false
	}
	return versions.parse(string(s))
}

// versions caches what go-version made of the strings it was given: it parses with a regular expression,
// some microseconds a call, and a policy compares the same few versions (the cluster's, the minimums) on
// every decision. Unparseable strings are cached too (as nil), since a client may send one every time.
var versions = &versionCache{entries: map[string]*version.Version{}}

// versionCacheSize bounds the cache: a fleet has few distinct versions, and a client that sends a new
// string every time must not grow it without bound. When it is full it starts over, which keeps the
// common versions (they come back at once) and costs no bookkeeping on the hot path.
const versionCacheSize = 4096

// maxCachedVersion is the longest string kept: a version is a few dozen bytes; anything longer is parsed
// every time rather than pinned in memory.
const maxCachedVersion = 64

type versionCache struct {
	mu      sync.RWMutex
	entries map[string]*version.Version // nil: not a version
}

func (c *versionCache) parse(s string) (*version.Version, bool) {
	if len(s) > maxCachedVersion {
		v, err := version.NewVersion(s)
		return v, err == nil
	}
	c.mu.RLock()
	v, hit := c.entries[s]
	c.mu.RUnlock()
	if hit {
		return v, v != nil
	}
	v, err := version.NewVersion(s)
	if err != nil {
		v = nil
	}
	c.mu.Lock()
	if len(c.entries) >= versionCacheSize {
		c.entries = make(map[string]*version.Version, versionCacheSize)
	}
	c.entries[strings.Clone(s)] = v
	c.mu.Unlock()
	return v, v != nil
}
