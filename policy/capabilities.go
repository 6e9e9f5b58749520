package policy

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// builtins are precheck's own Rego builtins, as builtins.go declares them. Capabilities publishes them; a
// test fails when a dws.* builtin is registered with OPA but missing here.
var builtins = []*rego.Function{VersionCompare, VersionValid}

// Capabilities returns what OPA's own tools need to know to accept precheck's policies: the capabilities
// of the OPA version precheck is built with, and the declarations of precheck's builtins (dws.*). Without
// them `opa check`, OPA's editor integrations and Regal reject every call to dws.version_compare and
// dws.version_valid as an undefined function. The builtins are sorted by name, as OPA sorts them.
//
// The Capabilities value and its slices are the caller's; the *ast.Builtin values are shared with OPA's
// registry and must not be changed.
func Capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	own := make([]*ast.Builtin, len(builtins))
	for i, f := range builtins {
		// The same declaration rego.RegisterBuiltinN gives OPA's registry.
		own[i] = &ast.Builtin{Name: f.Name, Description: f.Description, Decl: f.Decl, Nondeterministic: f.Nondeterministic}
	}
	// This package registers the builtins when it loads, so OPA's list already carries them: replace them,
	// so that the declarations come from builtins.go even if the registration changes.
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool {
		return slices.ContainsFunc(own, func(o *ast.Builtin) bool { return o.Name == b.Name })
	})
	c.Builtins = append(c.Builtins, own...)
	slices.SortFunc(c.Builtins, func(a, b *ast.Builtin) int { return strings.Compare(a.Name, b.Name) })
	return c
}

// CapabilitiesJSON is Capabilities as a capabilities file (`opa check --capabilities FILE`): indented
// JSON in the bytes `opa capabilities --current` would print for it, ending in a newline.
func CapabilitiesJSON() ([]byte, error) {
	data, err := json.MarshalIndent(Capabilities(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
