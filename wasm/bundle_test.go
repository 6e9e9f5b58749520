package wasm

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm/internal/opahost"
)

// TestBundleReadByOPA: the bundle WriteBundle writes is read back by OPA's own bundle reader, and its
// manifest's wasm entrypoints are exactly those the module exports.
func TestBundleReadByOPA(t *testing.T) {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.WriteBundle(&buf); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewReader(&buf).Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != p.Revision() {
		t.Errorf("revision %q, want %q", b.Manifest.Revision, p.Revision())
	}
	if len(b.WasmModules) != 1 || b.WasmModules[0].Path != "/policy.wasm" || !bytes.Equal(b.WasmModules[0].Raw, m.Wasm()) {
		t.Fatalf("bundle wasm modules: %d", len(b.WasmModules))
	}
	var manifest []string
	for _, r := range b.Manifest.WasmResolvers {
		if r.Module != "/policy.wasm" {
			t.Errorf("resolver %+v names another module", r)
		}
		manifest = append(manifest, r.Entrypoint)
	}
	host, err := opahost.Load(ctx, b.WasmModules[0].Raw, nil, opahost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	var exported []string
	for name := range host.Entrypoints() {
		exported = append(exported, name)
	}
	slices.Sort(manifest)
	slices.Sort(exported)
	if !slices.Equal(manifest, exported) || !slices.Contains(exported, policy.Entrypoint) {
		t.Errorf("manifest entrypoints %q, module exports %q", manifest, exported)
	}
	if cfg, ok := b.Data["precheck"].(map[string]any)["config"].(map[string]any); !ok || cfg["min_guest_agent_version"] != "8.3.0.200" {
		t.Errorf("bundle data lacks the policy's data: %v", b.Data)
	}
	if want := []string{"dws.version_compare", "dws.version_valid", "time.now_ns", "time.parse_rfc3339_ns"}; !slices.Equal(host.Builtins(), want) {
		t.Errorf("module imports builtins %q, want %q", host.Builtins(), want)
	}
}
