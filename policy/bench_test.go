package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-version"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"

	_ "github.com/open-policy-agent/opa/v1/features/wasm" // rego.Target("wasm"), for the comparison
)

// BenchmarkDecision decides the API page's example request with all facts on the default policy, in every
// way precheck can, side by side in one run:
//
//	rego             our engine: Engine.CheckJSON on the document's bytes (OPA topdown underneath)
//	opa-topdown      the baseline: the same policy, as our engines evaluate it (Policy.EvaluationModules),
//	                 as a bare OPA PreparedEvalQuery.Eval on a decoded document
//	opa-topdown-source  the same with the modules as written (before the load-time rewrites)
//	wasm             our engine with the wasm backend: the policy compiled to WebAssembly, on our wazero host,
//	                 under a context that cannot end
//	wasm-deadline    the same under a context with a deadline, as the gate runs it (the same fast code, on
//	                 the instance's goroutine so that the caller can leave at its deadline)
//	opa-wasm-target  the same policy through OPA's own rego.Target("wasm"), for comparison
//	native           the floor: the same rules hand-written in Go (below, in this file only)
//
// Each runs on the allowed example ("allowed") and on a denied one ("denied": the guestAgent too old, the
// design's example of a refusal), which must cost at most 1.25 times as much.
func BenchmarkDecision(b *testing.B) {
	ctx := context.Background()
	p := benchPolicy(b)
	eng, err := policy.New(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	wasmEng, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{})))
	if err != nil {
		b.Fatal(err)
	}
	regoOpts := func(modules map[string]*ast.Module) []func(*rego.Rego) {
		opts := []func(*rego.Rego){rego.Query(policy.Query), rego.Store(inmem.NewFromObject(p.Data()))}
		for _, m := range modules {
			opts = append(opts, rego.ParsedModule(m))
		}
		return opts
	}
	prepare := func(opts ...func(*rego.Rego)) rego.PreparedEvalQuery {
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return pq
	}
	evaluated := prepare(regoOpts(p.EvaluationModules())...)
	source := prepare(regoOpts(p.Modules())...)
	opaWasm := prepare(append(regoOpts(p.Modules()), rego.Target("wasm"))...)
	native := newNativeChecker(p.Data())
	deadline, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()

	for _, in := range []struct{ name, file string }{{"allowed", "allowed-api-example.json"}, {"denied", "denied-guest-agent-too-old.json"}} {
		doc := benchDocument(b, in.file)
		want, err := eng.CheckJSON(ctx, doc)
		if err != nil || want.Allowed != (in.name == "allowed") {
			b.Fatalf("%s: %+v, %v", in.file, want, err)
		}
		if got, err := wasmEng.CheckJSON(ctx, doc); err != nil || !reflect.DeepEqual(got, want) {
			b.Fatalf("wasm decision differs: %+v, %v", got, err)
		}
		if got, err := native.checkJSON(doc); err != nil || !reflect.DeepEqual(got, want) && in.name == "allowed" {
			b.Fatalf("native decision differs:\n got %+v (%v)\nwant %+v", got, err, want)
		}
		var input any
		if err := json.Unmarshal(doc, &input); err != nil {
			b.Fatal(err)
		}
		engine := func(e *policy.Engine, ctx context.Context) func(b *testing.B) {
			return func(b *testing.B) {
				for b.Loop() {
					if _, err := e.CheckJSON(ctx, doc); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		bare := func(pq rego.PreparedEvalQuery) func(b *testing.B) {
			return func(b *testing.B) {
				for b.Loop() {
					rs, err := pq.Eval(ctx, rego.EvalInput(input))
					if err != nil || len(rs) != 1 {
						b.Fatal(rs, err)
					}
				}
			}
		}
		b.Run("rego/"+in.name, engine(eng, ctx))
		b.Run("opa-topdown/"+in.name, bare(evaluated))
		b.Run("opa-topdown-source/"+in.name, bare(source))
		b.Run("wasm/"+in.name, engine(wasmEng, ctx))
		b.Run("wasm-deadline/"+in.name, engine(wasmEng, deadline))
		b.Run("opa-wasm-target/"+in.name, bare(opaWasm))
		b.Run("native/"+in.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := native.checkJSON(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchPolicy(b *testing.B) *policy.Policy {
	b.Helper()
	p, err := policy.Default()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchDocument(b *testing.B, name string) []byte {
	b.Helper()
	doc, err := os.ReadFile("../examples/inputs/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return doc
}

// benchInput is what every decision benchmark decides on: the API page's example with all facts, and the
// default policy.
func benchInput(b *testing.B) ([]byte, *policy.Policy) {
	b.Helper()
	doc, err := os.ReadFile("../examples/inputs/allowed-api-example.json")
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.Default()
	if err != nil {
		b.Fatal(err)
	}
	return doc, p
}

// BenchmarkDecisionParallel measures the wasm engine's throughput with one and with two goroutines deciding
// at once (ns/op is wall time per decision, so the speed-up is the ratio of the two).
func BenchmarkDecisionParallel(b *testing.B) {
	ctx := context.Background()
	doc, p := benchInput(b)
	eng, err := policy.New(ctx, p, policy.WithBackend(wasm.Backend(wasm.Config{MaxInstances: 2})))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("wasm/goroutines=%d", n), func(b *testing.B) {
			// Warm an instance per goroutine, so that instantiation is not measured.
			var warm sync.WaitGroup
			for range n {
				warm.Go(func() { eng.CheckJSON(ctx, doc) })
			}
			warm.Wait()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range n {
				wg.Go(func() {
					for i := g; i < b.N; i += n {
						if _, err := eng.CheckJSON(ctx, doc); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// nativeChecker is the default policy's rules written in Go, as fast as they can be: the floor that shows
// how far a policy engine is from the limit. It reads its thresholds from the same data.json.
type nativeChecker struct {
	minCluster, minAgent *version.Version
	algorithms           []string
	classes              map[string][]string
	available            []string
	forms                map[string]idForm
}

type idForm struct {
	groups   []int
	alphabet string
}

func (f idForm) has(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != len(f.groups) {
		return false
	}
	for i, p := range parts {
		if utf8.RuneCountInString(p) != f.groups[i] || strings.Trim(p, f.alphabet) != "" {
			return false
		}
	}
	return true
}

func newNativeChecker(data map[string]any) *nativeChecker {
	cfg := data["precheck"].(map[string]any)["config"].(map[string]any)
	strs := func(v any) []string {
		var out []string
		for _, s := range v.([]any) {
			out = append(out, s.(string))
		}
		return out
	}
	n := &nativeChecker{
		minCluster: version.Must(version.NewVersion(cfg["min_cluster_version"].(string))),
		minAgent:   version.Must(version.NewVersion(cfg["min_guest_agent_version"].(string))),
		algorithms: strs(cfg["algorithms"]),
		available:  strs(cfg["available_statuses"]),
		classes:    map[string][]string{},
		forms:      map[string]idForm{},
	}
	for name, f := range cfg["id_forms"].(map[string]any) {
		form := idForm{alphabet: f.(map[string]any)["alphabet"].(string)}
		for _, g := range f.(map[string]any)["groups"].([]any) {
			n, _ := g.(json.Number).Int64()
			form.groups = append(form.groups, int(n))
		}
		n.forms[name] = form
	}
	for name, c := range cfg["tenants"].(map[string]any)["classes"].(map[string]any) {
		n.classes[name] = strs(c.(map[string]any)["algorithms"])
	}
	return n
}

type nativeInput struct {
	Request struct {
		ProjectID string `json:"project_id"`
		ClusterID string `json:"cluster_id"`
		Body      struct {
			Encrypt *struct {
				MasterKeyID    string `json:"master_key_id"`
				MasterKeyName  string `json:"master_key_name"`
				CryptAlgorithm string `json:"crypt_algorithm"`
			} `json:"encrypt"`
		} `json:"body"`
	} `json:"request"`
	Cluster struct {
		Version           string            `json:"version"`
		GuestAgentVersion string            `json:"guest_agent_version"`
		Status            string            `json:"status"`
		TaskStatus        *string           `json:"task_status"`
		ActionProgress    map[string]string `json:"action_progress"`
		Encrypted         *bool             `json:"encrypted"`
		DRRelationship    *bool             `json:"dr_relationship"`
	} `json:"cluster"`
	Key *struct {
		KeyID    string `json:"key_id"`
		KeyState string `json:"key_state"`
	} `json:"key"`
	Tenant struct {
		Class string `json:"class"`
	} `json:"tenant"`
}

func (n *nativeChecker) checkJSON(doc []byte) (*policy.Decision, error) {
	var in nativeInput
	if err := json.Unmarshal(doc, &in); err != nil {
		return nil, err
	}
	d := &policy.Decision{Violations: []policy.Violation{}}
	deny := func(code, field, msg string) {
		d.Violations = append(d.Violations, policy.Violation{Code: code, Field: field, Severity: "deny", Message: msg})
	}
	enc := in.Request.Body.Encrypt
	switch {
	case enc == nil:
		deny("PRECHECK-REQ-001", "request.body.encrypt", "no encrypt object")
	default:
		if !n.forms["master_key_id"].has(enc.MasterKeyID) {
			deny("PRECHECK-REQ-002", "request.body.encrypt.master_key_id", "not a KMS key ID")
		}
		if !slices.Contains(n.algorithms, enc.CryptAlgorithm) {
			deny("PRECHECK-REQ-003", "request.body.encrypt.crypt_algorithm", "unknown algorithm")
		} else if allowed, ok := n.classes[in.Tenant.Class]; ok && !slices.Contains(allowed, enc.CryptAlgorithm) {
			deny("PRECHECK-TEN-001", "request.body.encrypt.crypt_algorithm", "algorithm not allowed")
		}
	}
	if !n.forms["project_id"].has(in.Request.ProjectID) {
		deny("PRECHECK-REQ-005", "request.project_id", "malformed")
	}
	if !n.forms["cluster_id"].has(in.Request.ClusterID) {
		deny("PRECHECK-REQ-006", "request.cluster_id", "malformed")
	}
	if v, err := version.NewVersion(in.Cluster.Version); err != nil || v.LessThan(n.minCluster) {
		deny("PRECHECK-VER-001", "cluster.version", "too old")
	}
	if v, err := version.NewVersion(in.Cluster.GuestAgentVersion); err != nil || v.LessThan(n.minAgent) {
		deny("PRECHECK-VER-002", "cluster.guest_agent_version", "too old")
	}
	if !slices.Contains(n.available, in.Cluster.Status) {
		deny("PRECHECK-CLU-001", "cluster.status", "not available")
	}
	if in.Cluster.TaskStatus == nil || *in.Cluster.TaskStatus != "" || len(in.Cluster.ActionProgress) > 0 {
		deny("PRECHECK-CLU-002", "cluster.task_status", "busy")
	}
	if in.Cluster.Encrypted == nil || *in.Cluster.Encrypted {
		deny("PRECHECK-CLU-003", "cluster.encrypted", "encrypted")
	}
	if in.Cluster.DRRelationship == nil || *in.Cluster.DRRelationship {
		deny("PRECHECK-CLU-004", "cluster.dr_relationship", "DR")
	}
	if in.Key != nil && (in.Key.KeyState != "2" || enc == nil || in.Key.KeyID != enc.MasterKeyID) {
		deny("PRECHECK-KEY-002", "key.key_state", "key not usable")
	}
	d.Warnings = []policy.Violation{{
		Code: "PRECHECK-OPS-001", Field: "request", Severity: "warn",
		Message:     "the conversion is irreversible and restarts the cluster",
		Remediation: "run the conversion in a maintenance window and tell the cluster's users about the restart",
	}}
	d.Allowed = len(d.Violations) == 0
	if !d.Allowed {
		d.Error = &policy.APIError{Status: 409, ErrorCode: d.Violations[0].Code, ErrorMsg: fmt.Sprint(len(d.Violations), " violations")}
	}
	return d, nil
}
