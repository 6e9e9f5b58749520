// Command wasm-host evaluates precheck.wasm, the policy compiled to WebAssembly by `precheck build`, on
// precheck's wazero host, and prints the decision for an input document.
//
//	go run ./cmd/precheck build -o precheck.wasm
//	go run ./examples/wasm-host precheck.wasm examples/inputs/denied-cluster-busy.json
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: wasm-host precheck.wasm input.json")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "wasm-host:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, modulePath, inputPath string) error {
	module, err := os.ReadFile(modulePath)
	if err != nil {
		return err
	}
	input, err := os.ReadFile(inputPath)
	if err != nil {
		return err
	}
	// The module was built from the default policy, which also supplies the data document it needs.
	p, err := policy.Default()
	if err != nil {
		return err
	}
	engine, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{Module: module})))
	if err != nil {
		return err
	}
	defer engine.Close(ctx)
	d, err := engine.CheckJSON(ctx, input)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
