package hookmodule_test

import (
	"context"
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/hookmodule"
	"github.com/precheck/precheck/policy"
)

// Load a hook module (examples/hooks/freeze, built with GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared) and run it in a chain.
func ExampleLoad() {
	ctx := context.Background()
	path, err := builtPath(freezeModule) // the tests build freeze.wasm
	if err != nil {
		panic(err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	// A cache directory keeps the machine code across runs, so that only the first Load compiles the
	// module (the tests compile it beforehand; with no Cache, every start of the host compiles it).
	cache, err := wazero.NewCompilationCacheWithDir(built.cacheDir)
	if err != nil {
		panic(err)
	}
	defer cache.Close(ctx)
	freeze, err := hookmodule.Load(ctx, wasm, hookmodule.Config{Cache: cache})
	if err != nil {
		panic(err)
	}
	defer freeze.Close(ctx)

	chain, err := plugin.NewChain(freeze) // and the policy: plugin.PolicyHook("policy", engine)
	if err != nil {
		panic(err)
	}
	doc, err := policy.ReadDocument([]byte(`{
		"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"},
		"cluster": {"tags": [{"key": "change-freeze", "value": "true"}]}
	}`), policy.DefaultLimits)
	if err != nil {
		panic(err)
	}
	d, err := chain.CheckDocument(ctx, doc)
	if err != nil {
		panic(err)
	}
	fmt.Println(freeze.Name(), d.Allowed, d.Error.Status, d.Error.ErrorCode)
	fmt.Println(d.Violations[0].Remediation)
	// Output:
	// freeze false 403 FREEZE-TAG-001
	// ask the cluster's owners to lift the freeze (remove the tag change-freeze or set it to false), then retry
}
