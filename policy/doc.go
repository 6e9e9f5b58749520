// Package policy is precheck's library face: it decides whether a Huawei Cloud GaussDB(DWS) "convert to an
// encrypted cluster" call (POST /v2/{project_id}/clusters/{cluster_id}/encrypt) may be made, by evaluating
// Rego policy over the call and the facts about the cluster, the KMS key and the tenant.
//
// The shapes are Input (the document decided on) and Decision (allowed, violations, warnings, and the
// API-shaped error a gate answers with). A Policy is loaded once (Default, Load, LoadWithOverrides) and
// prepared by an Engine, which is safe for concurrent use and reloads atomically:
//
//	p, _ := policy.Default()
//	engine, _ := policy.New(ctx, p)
//	d, _ := engine.CheckJSON(ctx, doc)
//	if !d.Allowed { /* answer d.Error instead of making the call */ }
//
// The Rego engine (Rego) is OPA's evaluator; package wasm provides another Backend. The go-version
// builtins dws.version_compare and dws.version_valid are registered with OPA when this package loads,
// so every engine, and the Rego unit tests (Policy.Test), see them.
package policy
