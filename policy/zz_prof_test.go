package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/precheck/precheck/policy"
)

func TestZZProfile(t *testing.T) {
	ctx := context.Background()
	p, _ := policy.Default()
	for _, f := range []string{"allowed-api-example.json", "denied-guest-agent-too-old.json"} {
		opts := []func(*rego.Rego){rego.Query(policy.Query), rego.Store(inmem.NewFromObject(p.Data()))}
		for _, m := range p.EvaluationModules() {
			opts = append(opts, rego.ParsedModule(m))
		}
		prof := profiler.New()
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil { t.Fatal(err) }
		doc, _ := os.ReadFile("../examples/inputs/" + f)
		var input any
		json.Unmarshal(doc, &input)
		for i := 0; i < 200; i++ {
			if _, err := pq.Eval(ctx, rego.EvalInput(input), rego.EvalQueryTracer(prof)); err != nil { t.Fatal(err) }
		}
		stats := prof.ReportTopNResults(25, []string{"total_time_ns"})
		fmt.Println("==", f)
		total, n := int64(0), 0
		for _, s := range prof.ReportTopNResults(-1, []string{"total_time_ns"}) { total += s.ExprTimeNs; n += s.NumEval }
		fmt.Printf("total %d µs/eval, %d evals/eval\n", total/200/1000, n/200)
		for _, s := range stats {
			fmt.Printf("%6d ns %5d ev  %s:%d\n", s.ExprTimeNs/200, s.NumEval/200, s.Location.File, s.Location.Row)
		}
	}
}
