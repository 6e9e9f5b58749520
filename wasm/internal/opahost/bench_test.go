package opahost

import (
	"context"
	"encoding/json"
	"testing"

	_ "github.com/open-policy-agent/opa/v1/features/wasm" // enables rego.Target("wasm")
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

const benchPolicy = `package bench

default allow := false

allow if {
	some role in data.bindings[input.user]
	some perm in data.roles[role]
	perm.action == input.action
	startswith(input.resource, perm.prefix)
}
`

const benchData = `{
	"bindings": {"alice": ["reader", "writer"], "bob": ["reader"]},
	"roles": {
		"reader": [{"action": "read", "prefix": "/docs/"}],
		"writer": [{"action": "write", "prefix": "/docs/"}, {"action": "write", "prefix": "/tmp/"}]
	}
}`

const benchInput = `{"user":"alice","action":"write","resource":"/tmp/scratch/file.txt"}`

// BenchmarkEval compares this host with OPA's own wazero-based wasm target
// and with OPA's interpreter, on the same small policy, data and input.
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	sources := map[string]string{"bench.rego": benchPolicy}
	module := compileWasm(b, sources, nil, "bench/allow")
	const want = `[{"result":true}]`

	var data map[string]any
	if err := json.Unmarshal([]byte(benchData), &data); err != nil {
		b.Fatal(err)
	}
	var input any
	if err := json.Unmarshal([]byte(benchInput), &input); err != nil {
		b.Fatal(err)
	}
	inputBytes := []byte(benchInput)

	// "opahost" evaluates under a context that cannot end (the compilation
	// without termination checks), "opahost-cancellable" under one that can.
	cancellable, cancel := context.WithCancel(ctx)
	defer cancel()
	for name, ectx := range map[string]context.Context{"opahost": ctx, "opahost-cancellable": cancellable} {
		b.Run(name, func(b *testing.B) {
			p := mustLoad(b, module, []byte(benchData), Config{})
			ep := entrypoint(b, p, "bench/allow")
			b.ReportAllocs()
			for b.Loop() {
				res, err := p.Eval(ectx, ep, inputBytes, EvalOptions{})
				if err != nil || string(res) != want {
					b.Fatalf("%s, %v", res, err)
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			p := mustLoad(b, module, []byte(benchData), Config{})
			ep := entrypoint(b, p, "bench/allow")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := p.Eval(ectx, ep, inputBytes, EvalOptions{})
					if err != nil || string(res) != want {
						b.Errorf("%s, %v", res, err)
						return
					}
				}
			})
		})
	}

	prepare := func(b *testing.B, target string) rego.PreparedEvalQuery {
		opts := []func(*rego.Rego){
			rego.Query("data.bench.allow"),
			rego.Module("bench.rego", benchPolicy),
			rego.Store(inmem.NewFromObject(data)),
		}
		if target != "" {
			opts = append(opts, rego.Target(target))
		}
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return pq
	}
	checkRS := func(b *testing.B, rs rego.ResultSet, err error) bool {
		if err != nil || len(rs) != 1 || rs[0].Expressions[0].Value != true {
			b.Errorf("%v, %v", rs, err)
			return false
		}
		return true
	}
	for _, target := range []string{"wasm", "rego"} {
		name := "opa-" + target
		b.Run(name, func(b *testing.B) {
			pq := prepare(b, target)
			b.ReportAllocs()
			for b.Loop() {
				rs, err := pq.Eval(ctx, rego.EvalInput(input))
				if !checkRS(b, rs, err) {
					return
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			pq := prepare(b, target)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rs, err := pq.Eval(ctx, rego.EvalInput(input))
					if !checkRS(b, rs, err) {
						return
					}
				}
			})
		})
	}
}

// BenchmarkEvalBuiltin measures an evaluation that calls a builtin served by
// the host (sprintf), i.e. the argument and result conversions.
func BenchmarkEvalBuiltin(b *testing.B) {
	module := compileWasm(b, map[string]string{"s.rego": `package s
msg := sprintf("user %s may %s %s", [input.user, input.action, input.resource])
`}, nil, "s/msg")
	p := mustLoad(b, module, nil, Config{})
	ep := entrypoint(b, p, "s/msg")
	in := []byte(benchInput)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Eval(context.Background(), ep, in, EvalOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
