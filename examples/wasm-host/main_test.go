package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// TestRun builds precheck.wasm as `precheck build` does, hosts it, and checks the decisions against the
// library's own engine.
func TestRun(t *testing.T) {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasm.Compile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(t.TempDir(), "precheck.wasm")
	if err := os.WriteFile(module, m.Wasm(), 0o644); err != nil {
		t.Fatal(err)
	}
	rego, err := policy.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// Each run hosts the module from scratch, as the command does; the two run side by side.
	for _, name := range []string{"allowed-api-example.json", "denied-cluster-busy.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			input := filepath.Join("..", "inputs", name)
			var out bytes.Buffer
			if err := run(ctx, &out, module, input); err != nil {
				t.Fatal(err)
			}
			doc, _ := os.ReadFile(input)
			want, err := rego.CheckJSON(ctx, doc)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.MarshalIndent(want, "", "  ")
			if got := bytes.TrimSpace(out.Bytes()); !bytes.Equal(got, wantJSON) {
				t.Errorf("%s:\n%s\nwant\n%s", name, got, wantJSON)
			}
		})
	}
}
