package policy_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/precheck/precheck/policy"
)

func TestCapabilities(t *testing.T) {
	t.Parallel()
	c := policy.Capabilities()
	byName := map[string]*ast.Builtin{}
	for i, b := range c.Builtins {
		if byName[b.Name] != nil {
			t.Errorf("builtin %s listed twice", b.Name)
		}
		byName[b.Name] = b
		if i > 0 && c.Builtins[i-1].Name > b.Name {
			t.Errorf("builtins not sorted by name: %s before %s", c.Builtins[i-1].Name, b.Name)
		}
	}
	for _, want := range []struct {
		name string
		decl *types.Function
	}{
		{policy.VersionCompare.Name, policy.VersionCompare.Decl},
		{policy.VersionValid.Name, policy.VersionValid.Decl},
	} {
		b := byName[want.name]
		if b == nil {
			t.Errorf("%s missing", want.name)
			continue
		}
		if types.Compare(b.Decl, want.decl) != 0 || b.Decl.String() != want.decl.String() {
			t.Errorf("%s declared %v, builtins.go declares %v", want.name, b.Decl, want.decl)
		}
	}
	// A dws.* builtin registered with OPA but not published would make OPA's tools reject the policy.
	for name := range ast.BuiltinMap {
		if strings.HasPrefix(name, "dws.") && byName[name] == nil {
			t.Errorf("%s is registered with OPA but not in the capabilities", name)
		}
	}
	// Everything OPA itself knows stays.
	opa := ast.CapabilitiesForThisVersion()
	for _, b := range opa.Builtins {
		if byName[b.Name] == nil {
			t.Errorf("OPA builtin %s missing", b.Name)
		}
	}
	if !slices.Equal(c.Features, opa.Features) || !slices.Equal(c.FutureKeywords, opa.FutureKeywords) ||
		!slices.Equal(c.WasmABIVersions, opa.WasmABIVersions) {
		t.Error("features, future keywords or wasm ABI versions differ from OPA's")
	}

	a, err := policy.CapabilitiesJSON()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := policy.CapabilitiesJSON()
	if !bytes.Equal(a, b) {
		t.Error("CapabilitiesJSON differs between two calls")
	}
	back, err := ast.LoadCapabilitiesJSON(bytes.NewReader(a))
	if err != nil {
		t.Fatalf("OPA cannot read the capabilities file: %v", err)
	}
	if len(back.Builtins) != len(c.Builtins) {
		t.Errorf("read back %d builtins, wrote %d", len(back.Builtins), len(c.Builtins))
	}
}

// TestCapabilitiesCompile compiles the default policy, tests included, as `opa check --strict` does: with
// the capabilities it passes, and without the dws.* declarations it fails the way stock OPA does.
func TestCapabilitiesCompile(t *testing.T) {
	policy.WithoutRace.Delegate(t)
	t.Parallel()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	compile := func(c *ast.Capabilities) ast.Errors {
		modules := map[string]*ast.Module{}
		for name, m := range p.Modules() {
			modules[name] = m.Copy()
		}
		tests, err := p.Tests()
		if err != nil {
			t.Fatal(err)
		}
		for name, m := range tests {
			modules[name] = m.Copy()
		}
		compiler := ast.NewCompiler().WithStrict(true).WithCapabilities(c).WithEnablePrintStatements(true).
			WithUseTypeCheckAnnotations(true)
		compiler.Compile(modules)
		return compiler.Errors
	}
	if errs := compile(policy.Capabilities()); len(errs) > 0 {
		t.Fatalf("strict compile with the capabilities: %v", errs)
	}
	stock := policy.Capabilities()
	stock.Builtins = slices.DeleteFunc(stock.Builtins, func(b *ast.Builtin) bool { return strings.HasPrefix(b.Name, "dws.") })
	errs := compile(stock)
	if !strings.Contains(errs.Error(), "undefined function dws.version_compare") {
		t.Fatalf("without the dws.* declarations: %v", errs)
	}
}

func ExampleCapabilities() {
	for _, b := range policy.Capabilities().Builtins {
		if strings.HasPrefix(b.Name, "dws.") {
			fmt.Println(b.Name, b.Decl)
		}
	}
	// Output:
	// dws.version_compare (any, any) => number
	// dws.version_valid (any) => boolean
}
