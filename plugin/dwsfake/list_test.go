package dwsfake_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
	kmsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2/model"

	"github.com/precheck/precheck/plugin/dwsfake"
)

const otherProject = "0123456789abcdef0123456789abcdef"

func TestListClustersThroughSDK(t *testing.T) {
	srv := newServer(t)
	for _, c := range dwsfake.GenerateClusters(62, dwsfake.ExampleProjectID, otherProject) {
		srv.PutCluster(c)
	}
	c := dwsClient(t, srv, nil)
	resp, err := c.ListClusters(&dwsmodel.ListClustersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count == nil || *resp.Count != 31 || resp.Clusters == nil || len(*resp.Clusters) != 31 {
		t.Fatalf("count %v, %d clusters; want 31 of the example project's", resp.Count, len(*resp.Clusters))
	}
	for i, ci := range *resp.Clusters {
		if want := dwsfake.GeneratedClusterID(2 * i); ci.Id != want || ci.Status != "AVAILABLE" || ci.Version == "" {
			t.Errorf("cluster %d = %s %s %s, want %s, in the order put", i, ci.Id, ci.Status, ci.Version, want)
		}
	}
	// enterprise_project_id narrows the list; all_granted_eps does not; "0" is the default project.
	for eps, want := range map[string]int{"aca4e50a-266f-4786-827c-f8d6cc3fbada": 1, dwsfake.AllGrantedEnterpriseProjects: 31, dwsfake.DefaultEnterpriseProject: 30} {
		resp, err := c.ListClusters(&dwsmodel.ListClustersRequest{EnterpriseProjectId: &eps})
		if err != nil {
			t.Fatal(err)
		}
		if int(*resp.Count) != want || len(*resp.Clusters) != want {
			t.Errorf("enterprise project %s: %d (count %d), want %d", eps, len(*resp.Clusters), *resp.Count, want)
		}
	}
	sent := false
	for _, r := range srv.Requests() {
		sent = sent || r.RawQuery == "enterprise_project_id=all_granted_eps"
	}
	if !sent {
		t.Error("the SDK's enterprise_project_id did not arrive as the query")
	}
}

func TestListLimitAnswersAnIncompleteList(t *testing.T) {
	srv := newServer(t)
	for _, c := range dwsfake.GenerateClusters(5) {
		srv.PutCluster(c)
	}
	srv.SetListLimit(3)
	resp, err := dwsClient(t, srv, nil).ListClusters(&dwsmodel.ListClustersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if *resp.Count != 5 || len(*resp.Clusters) != 3 {
		t.Fatalf("count %d, %d listed; want 5 and 3", *resp.Count, len(*resp.Clusters))
	}
}

func TestThousandClustersAreCheap(t *testing.T) {
	srv := newServer(t)
	for _, c := range dwsfake.GenerateClusters(1000) {
		srv.PutCluster(c)
	}
	start := time.Now()
	resp, err := dwsClient(t, srv, nil).ListClusters(&dwsmodel.ListClustersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(*resp.Clusters) != 1000 || len(srv.Clusters()) != 1000 {
		t.Fatalf("%d listed, %d held", len(*resp.Clusters), len(srv.Clusters()))
	}
	t.Logf("listing 1,000 clusters through the SDK took %v", time.Since(start))
}

func TestThrottleEvery(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	srv.Throttle(dwsfake.Throttling{Endpoints: []dwsfake.Endpoint{dwsfake.ListClusterDetails}, Every: 2, RetryAfter: 1500 * time.Millisecond})
	c := dwsClient(t, srv, nil)
	req := &dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}
	if _, err := c.ListClusterDetails(req); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := c.ListClusterDetails(req)
	se := serviceError(t, err)
	if se.StatusCode != http.StatusTooManyRequests || se.ErrorCode != dwsfake.CodeThrottled || !strings.Contains(se.ErrorMessage, "throttling threshold") {
		t.Fatalf("second call: %+v, want 429 %s", se, dwsfake.CodeThrottled)
	}
	// Other endpoints are not throttled.
	if _, err := c.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if !reqs[1].Throttled || reqs[1].Status != 429 || srv.Throttled() != 1 {
		t.Errorf("records: %+v; throttled %d", reqs[1], srv.Throttled())
	}
	// Retry-After is in whole seconds, rounded up.
	srv.Throttle(dwsfake.Throttling{Every: 1, RetryAfter: 1500 * time.Millisecond})
	hreq, _ := http.NewRequest("GET", srv.URL+"/v1.0/"+dwsfake.ExampleProjectID+"/clusters", nil)
	hreq.Header.Set("Authorization", "x")
	hreq.Header.Set("X-Sdk-Date", "x")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("status %d, Retry-After %q; want 429, 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	srv.Unthrottle()
	if _, err := c.ListClusterDetails(req); err != nil {
		t.Fatalf("after Unthrottle: %v", err)
	}
}

func TestThrottleRate(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	srv.Throttle(dwsfake.Throttling{RequestsPerSecond: 1, Burst: 3})
	c := dwsClient(t, srv, nil)
	var throttled int
	for range 6 {
		_, err := c.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID})
		var se *sdkerr.ServiceResponseError
		if errors.As(err, &se) && se.StatusCode == 429 {
			throttled++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if throttled < 2 || throttled > 3 {
		t.Errorf("%d of 6 quick calls throttled, want those past a burst of 3 (2-3)", throttled)
	}
}

func TestFailFor(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	other := dwsfake.ExampleCluster()
	other.ID = "11111111-2222-3333-4444-555555555555"
	srv.PutCluster(other)
	srv.FailFor(dwsfake.ListClusterDetails, other.ID, dwsfake.Fault{Status: 503, ErrorCode: "FAKE.0503", Times: 2})
	srv.FailFor(dwsfake.DescribeKey, dwsfake.ExampleKeyID, dwsfake.Fault{Status: 500, Body: []byte(`{"error":{"error_code":"KMS.0001","error_msg":"boom"}}`)})
	srv.FailFor(dwsfake.ListClusters, otherProject, dwsfake.Fault{Status: 403, ErrorCode: dwsfake.CodeNotFound, ErrorMsg: "no"})
	c := dwsClient(t, srv, nil)
	for i := range 3 {
		_, err := c.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: other.ID})
		if i < 2 && serviceError(t, err).StatusCode != 503 {
			t.Fatalf("call %d: %v, want 503", i, err)
		}
		if i == 2 && err != nil {
			t.Fatalf("after Times: %v", err)
		}
		// The other cluster is unaffected.
		if _, err := c.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := kmsClient(t, srv).ListKeyDetail(&kmsmodel.ListKeyDetailRequest{Body: &kmsmodel.OperateKeyRequestBody{KeyId: dwsfake.ExampleKeyID}})
	if se := serviceError(t, err); se.StatusCode != 500 || se.ErrorCode != "KMS.0001" {
		t.Errorf("DescribeKey: %+v", se)
	}
	if _, err := c.ListClusters(&dwsmodel.ListClustersRequest{}); err != nil {
		t.Errorf("the example project's list failed: %v", err)
	}
	oc, _ := srv.DWSClient(otherProject, nil)
	if _, err := oc.ListClusters(&dwsmodel.ListClustersRequest{}); serviceError(t, err).StatusCode != 403 {
		t.Errorf("the other project's list: %v", err)
	}
	srv.HealFor(dwsfake.DescribeKey, dwsfake.ExampleKeyID)
	if _, err := kmsClient(t, srv).ListKeyDetail(&kmsmodel.ListKeyDetailRequest{Body: &kmsmodel.OperateKeyRequestBody{KeyId: dwsfake.ExampleKeyID}}); err != nil {
		t.Errorf("after HealFor: %v", err)
	}
}

func TestEchoFault(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Status: 500, Echo: true})
	_, err := dwsClient(t, srv, nil).ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
	if se := serviceError(t, err); !strings.Contains(se.ErrorMessage, "Authorization: SDK-HMAC-SHA256 Access="+dwsfake.TestAK) {
		t.Errorf("the echo lacks the signing header: %s", se.ErrorMessage)
	}
}
