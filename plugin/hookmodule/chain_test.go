package hookmodule_test

import (
	"context"
	"testing"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/hookmodule"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// TestChainOfAllThreeKinds runs the three kinds of hook the contract names in one chain: the Rego policy on
// the rego engine, the same policy as a compiled precheck.wasm, and a third-party hook module (the freeze
// example). Their findings merge into one decision.
func TestChainOfAllThreeKinds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	rego, err := policy.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasm.Compile(ctx, p) // what `precheck build` writes as precheck.wasm
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{Module: m.Wasm(), MachineCode: policytest.MachineCode()})))
	if err != nil {
		t.Fatal(err)
	}
	freeze := loadBuilt(t, freezeModule, hookmodule.Config{})
	chain, err := plugin.NewChain(plugin.PolicyHook("rego", rego), plugin.PolicyHook("precheck.wasm", compiled), freeze)
	if err != nil {
		t.Fatal(err)
	}

	d, err := chain.CheckDocument(ctx, apiExample(t, `[{"key": "env", "value": "prod"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || len(d.Warnings) != 2 { // the restart warning, once from each policy hook
		t.Fatalf("untagged: %+v", d)
	}
	d, err = chain.CheckDocument(ctx, apiExample(t, `[{"key": "change-freeze", "value": "true"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Error.ErrorCode != "FREEZE-TAG-001" || d.Error.Status != 403 {
		t.Fatalf("tagged: %+v %+v", d, d.Error)
	}
}
