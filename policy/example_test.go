package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/precheck/precheck/policy"
)

// The shortest use: load the embedded default policy once, then check calls before making them.
func ExampleEngine_Check() {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(ctx, p)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)

	d, err := engine.Check(ctx, &policy.Input{
		Request: policy.Request{
			ProjectID: "89cd04f168b84af6be287f71730fdb4b",
			ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
			Body:      json.RawMessage(`{"encrypt": {"crypt_algorithm": "generalCipher", "master_key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce"}}`),
		},
		Cluster: &policy.Cluster{
			Version:           "8.1.3.310",
			GuestAgentVersion: "8.3.0.199",
			Status:            "AVAILABLE",
			TaskStatus:        policy.String(""),
			Encrypted:         policy.Bool(false),
			DRRelationship:    policy.Bool(false),
		},
		Tenant: &policy.Tenant{Class: "regulated"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("allowed:", d.Allowed)
	for _, v := range d.Violations {
		fmt.Printf("%s %s: %s\n", v.Code, v.Field, v.Message)
	}
	fmt.Printf("a gate answers %d %s\n", d.Error.Status, d.Error.ErrorCode)
	// Output:
	// allowed: false
	// PRECHECK-TEN-001 request.body.encrypt.crypt_algorithm: crypt_algorithm generalCipher is not allowed for tenant class regulated; it allows only SMcompatible
	// PRECHECK-VER-002 cluster.guest_agent_version: guestAgent version 8.3.0.199 is below the required 8.3.0.200
	// a gate answers 403 PRECHECK-TEN-001
}

// CheckJSON takes the input document as JSON, as the command and the HTTP API do; wrong types inside it are
// violations, malformed JSON is an *InputError naming line and column.
func ExampleEngine_CheckJSON() {
	ctx := context.Background()
	p, _ := policy.Default()
	engine, _ := policy.New(ctx, p)
	defer engine.Close(ctx)

	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, _ := engine.CheckJSON(ctx, doc)
	fmt.Println("allowed:", d.Allowed)
	for _, w := range d.Warnings {
		fmt.Println("warning:", w.Code, w.Message)
	}

	_, err := engine.CheckJSON(ctx, []byte("{\n  \"request\": {,}\n}"))
	fmt.Println(err)
	// Output:
	// allowed: true
	// warning: PRECHECK-OPS-001 the conversion is irreversible and restarts the cluster
	// input: line 2, column 15: malformed JSON: invalid character ',' looking for beginning of object key string
}

// A compliance team's overrides layer over the default: here data alone raises a threshold.
func ExampleLoadWithOverrides() {
	dir, _ := os.MkdirTemp("", "overrides")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "8.3.1"}}}`), 0o644)

	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	engine, _ := policy.New(ctx, p)
	defer engine.Close(ctx)
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, _ := engine.CheckJSON(ctx, doc)
	fmt.Println(d.Violations[0].Message)
	// Output:
	// guestAgent version 8.3.0.200 is below the required 8.3.1
}

// Reload swaps the policy atomically; a policy that fails to prepare leaves the engine as it was.
func ExampleEngine_Reload() {
	ctx := context.Background()
	p, _ := policy.Default()
	engine, _ := policy.New(ctx, p)
	defer engine.Close(ctx)

	dir, _ := os.MkdirTemp("", "broken")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	broken, _ := policy.LoadWithOverrides(dir)

	err := engine.Reload(ctx, broken)
	fmt.Println("reload failed:", err != nil)
	fmt.Println("still serving:", engine.Policy().Revision() == p.Revision())
	// Output:
	// reload failed: true
	// still serving: true
}

// A decision log names the policy that decided, which CheckDocumentWithPolicy returns: a Reload during the
// decision has Engine.Policy name the next one already.
func ExampleEngine_CheckDocumentWithPolicy() {
	ctx := context.Background()
	p, _ := policy.Default()
	engine, _ := policy.New(ctx, p)
	defer engine.Close(ctx)

	raw, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	doc, _ := policy.ReadDocument(raw, engine.Limits())
	d, by, _ := engine.CheckDocumentWithPolicy(ctx, doc)
	fmt.Println("allowed:", d.Allowed, "by the default:", by == p)
	// Output:
	// allowed: true by the default: true
}

// The rule catalog comes from the rules' METADATA.
func ExamplePolicy_Catalog() {
	p, _ := policy.Default()
	r, _ := p.Catalog().Lookup("PRECHECK-VER-002")
	fmt.Println(r.Title, "|", r.Severity, r.Status)
	// Output:
	// guestAgent version too old or unparseable | deny 409
}

// Test runs the policy's Rego unit tests with the project's builtins.
func ExamplePolicy_Test() {
	p, _ := policy.Default()
	report, _ := p.Test(context.Background(), policy.TestOptions{Run: "test_builtins"})
	fmt.Println(len(report.Results), "test, passed:", report.Passed())
	// Output:
	// 1 test, passed: true
}

// The engine reports how it evaluates, for /readyz and metrics: the rego engine has one kind of code; the
// wasm engine says whether it runs its fast code and what its watchdog did.
func ExampleEngine_State() {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(ctx, p)
	if err != nil {
		panic(err)
	}
	defer engine.Close(ctx)
	s := engine.State()
	fmt.Println(s.Backend, s.Revision == p.Revision(), s.Degraded)
	// Output: rego true false
}

// A decision log names the call by the identifiers the reading of the document found, without a second
// parse.
func ExampleDocument_RequestIDs() {
	doc, err := policy.ReadEnvelope([]byte(`{"input": {"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": 7}}}`), policy.DefaultLimits)
	if err != nil {
		panic(err)
	}
	project, cluster := doc.RequestIDs()
	fmt.Printf("%q %q\n", project, cluster)
	// Output: "89cd04f168b84af6be287f71730fdb4b" ""
}

// The facts of a call include its KMS key's: the reading of the document found the key ID the body names,
// escapes decoded as the API's server decodes them.
func ExampleDocument_MasterKeyID() {
	doc, err := policy.NewDocument(&policy.Input{Request: policy.Request{
		ProjectID: "89cd04f168b84af6be287f71730fdb4b",
		ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		Body:      json.RawMessage(`{"encrypt": {"master_key_id": "\u0030f3196c8-5c23-469f-84da-92ecd2499dce", "crypt_algorithm": "SMcompatible"}}`),
	}}, policy.DefaultLimits)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", doc.MasterKeyID())
	// Output: "0f3196c8-5c23-469f-84da-92ecd2499dce"
}

// The engines evaluate the modules rewritten at load: rego.metadata.rule() is the rule's literal custom
// annotations, and references into the policy's data are its values. The modules as written stay as they
// are for the catalog, the linter and the tests.
func ExamplePolicy_EvaluationModules() {
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	written := p.Modules()["cluster.rego"].String()
	evaluated := p.EvaluationModules()["cluster.rego"].String()
	fmt.Println(strings.Contains(written, "rego.metadata.rule()"), strings.Contains(evaluated, "rego.metadata.rule()"))
	fmt.Println(strings.Contains(evaluated, `"PRECHECK-CLU-001"`))
	// Output:
	// true false
	// true
}

// CheckObject holds another file of facts to the document's reading: here the second of two entries of an
// inventory, which names a member twice up to letter case (encoding/json would read the last of them).
func ExampleCheckObject() {
	data := []byte(`[{"cluster_id": "a"}, {"cluster_id": "b", "Cluster_ID": "c"}]`)
	start := strings.Index(string(data), `{"cluster_id": "b"`)
	err := policy.CheckObject(data, start, len(data)-1, policy.DefaultLimits.MaxDepth, "[1]")
	fmt.Println(err)
	// Output: input: line 1, column 43: [1].Cluster_ID: member "Cluster_ID" in [1] is member "cluster_id" again up to letter case; readers that fold case (as Go's encoding/json does) disagree on which one counts
}
