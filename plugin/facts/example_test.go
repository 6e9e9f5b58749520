package facts_test

import (
	"context"
	"fmt"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// Cached asks its provider once per cluster within the TTL; Forget (which the gate calls once it has
// forwarded an encrypt call) makes the next question go to the provider again.
func ExampleCached() {
	asked := 0
	api := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		asked++
		return &facts.Facts{Cluster: &policy.Cluster{Status: "AVAILABLE", Encrypted: policy.Bool(asked > 1)}}, nil
	})
	p := facts.Cached(api, 30*time.Second)
	r := facts.Request{ProjectID: "89cd04f168b84af6be287f71730fdb4b", ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}
	ctx := context.Background()
	for range 2 {
		f, _ := p.Facts(ctx, r)
		fmt.Println("encrypted:", *f.Cluster.Encrypted, "asked:", asked)
	}
	p.(facts.Forgetter).Forget(r.ProjectID, r.ClusterID) // the conversion was forwarded
	f, _ := p.Facts(ctx, r)
	fmt.Println("encrypted:", *f.Cluster.Encrypted, "asked:", asked)
	// Output:
	// encrypted: false asked: 1
	// encrypted: false asked: 1
	// encrypted: true asked: 2
}
