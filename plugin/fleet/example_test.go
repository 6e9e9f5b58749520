package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

// Gather lists a project's clusters and gathers each one's facts; a cluster whose facts fail is reported
// with its reason, never dropped.
func ExampleGather() {
	srv := dwsfake.New()
	defer srv.Close()
	for _, c := range dwsfake.GenerateClusters(3) {
		srv.PutCluster(c)
	}
	srv.PutKey(dwsfake.ExampleKey())
	srv.FailFor(dwsfake.ListClusterDetails, dwsfake.GeneratedClusterID(1), dwsfake.Fault{Status: 500, ErrorCode: "DWS.9999", ErrorMsg: "internal error",
		Header: http.Header{"X-Request-Id": {"5e1ec7ed0000000000000000000000aa"}}})
	os.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK) // the SDK's providers find the credentials
	os.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
	defer os.Unsetenv("HUAWEICLOUD_SDK_AK")
	defer os.Unsetenv("HUAWEICLOUD_SDK_SK")

	g, err := fleet.Gather(context.Background(), fleet.Config{
		Targets: []dwsapi.Target{{ProjectID: dwsfake.ExampleProjectID, Endpoint: srv.URL}},
		Encrypt: policy.Encrypt{CryptAlgorithm: "SMcompatible", MasterKeyID: dwsfake.ExampleKeyID},
		Policy:  dwsapi.CallPolicy{RequestsPerSecond: 50, Burst: 5},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range g.Results {
		if r.Err != nil {
			fmt.Printf("%s could not be gathered: %v\n", r.Entry.ClusterID, r.Err)
			continue
		}
		fmt.Printf("%s version %s, %s, key %s\n", r.Entry.ClusterID, r.Entry.Cluster.Version, r.Entry.Cluster.Status, r.Entry.Key.KeyState)
	}
	// Output:
	// c0ffee00-0000-4000-8000-100000000000 version 8.1.3.310, AVAILABLE, key 2
	// c0ffee00-0000-4000-8000-100000000001 could not be gathered: dwsapi: cluster (DWS ListClusterDetails): HTTP 500 DWS.9999: internal error (X-Request-Id 5e1ec7ed0000000000000000000000aa)
	// c0ffee00-0000-4000-8000-100000000002 version 8.1.3.310, AVAILABLE, key 2
}
