package dwsapi_test

import (
	"context"
	"fmt"
	"os"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

// GatherCheck builds the input document of one intended call from the DWS and KMS APIs, with the provenance
// of every fact. The credentials come from the SDK's providers: here the environment, as in a shell.
func ExampleGatherCheck() {
	srv := dwsfake.New() // stands in for https://dws.cn-north-4.myhuaweicloud.com
	defer srv.Close()
	srv.SeedExample()
	os.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK)
	os.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
	defer os.Unsetenv("HUAWEICLOUD_SDK_AK")
	defer os.Unsetenv("HUAWEICLOUD_SDK_SK")

	g, err := dwsapi.GatherCheck(context.Background(), dwsapi.CheckRequest{
		Target:       dwsapi.Target{ProjectID: dwsfake.ExampleProjectID, Endpoint: srv.URL}, // or Region: "cn-north-4"
		ClusterID:    dwsfake.ExampleClusterID,
		Encrypt:      policy.Encrypt{CryptAlgorithm: "generalCipher", MasterKeyID: dwsfake.ExampleKeyID},
		AgentVersion: "8.3.0.200",
	})
	if err != nil {
		fmt.Println(err) // an *dwsapi.Error names the call and its HTTP status
		return
	}
	for _, field := range g.Provenance.Fields() {
		fmt.Printf("%s from %s\n", field, g.Provenance[field])
	}
	// Output:
	// cluster.action_progress from DWS ListClusterDetails
	// cluster.dr_relationship from DWS ListDisasterRecover
	// cluster.encrypted from DWS ShowClusterEncryptInfo
	// cluster.enterprise_project_id from DWS ListClusterDetails
	// cluster.guest_agent_version from flag --agent-version
	// cluster.status from DWS ListClusterDetails
	// cluster.sub_status from DWS ListClusterDetails
	// cluster.tags from DWS ListClusterDetails
	// cluster.task_status from DWS ListClusterDetails
	// cluster.version from DWS ListClusterDetails
	// key.key_id from KMS DescribeKey
	// key.key_spec from KMS DescribeKey
	// key.key_state from KMS DescribeKey
}
