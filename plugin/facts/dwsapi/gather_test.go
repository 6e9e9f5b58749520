package dwsapi_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

// fromEnvironment gives the SDK's standard providers the fake's credentials, as an operator's shell would.
func fromEnvironment(t testing.TB) {
	t.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", "")
}

func exampleCheck(srv *dwsfake.Server) dwsapi.CheckRequest {
	return dwsapi.CheckRequest{
		Target:    dwsapi.Target{ProjectID: dwsfake.ExampleProjectID, Endpoint: srv.URL},
		ClusterID: dwsfake.ExampleClusterID,
		Encrypt:   policy.Encrypt{CryptAlgorithm: "generalCipher", MasterKeyID: dwsfake.ExampleKeyID, MasterKeyName: dwsfake.ExampleKeyName},
		Policy:    dwsapi.CallPolicy{BaseBackoff: time.Millisecond},
	}
}

func TestGatherCheckWithProvenance(t *testing.T) {
	fromEnvironment(t)
	srv := dwsfake.New()
	defer srv.Close()
	srv.SeedExample()
	inv, err := facts.ParseCSV(strings.NewReader("cluster_id,guest_agent_version,tenant_class\n" + dwsfake.ExampleClusterID + ",8.3.0.100,regulated\n"))
	if err != nil {
		t.Fatal(err)
	}
	req := exampleCheck(srv)
	req.Inventory, req.InventorySource = inv, "inventory clusters.csv"
	req.AgentVersion = "8.3.0.200" // the flag stands before the inventory

	g, err := dwsapi.GatherCheck(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := &policy.Input{
		Request: policy.Request{ProjectID: dwsfake.ExampleProjectID, ClusterID: dwsfake.ExampleClusterID,
			Body: []byte(`{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"0f3196c8-5c23-469f-84da-92ecd2499dce","master_key_name":"KMS-1abd-1016"}}`)},
		Cluster: &policy.Cluster{Version: "8.1.3.310", GuestAgentVersion: "8.3.0.200", Status: "AVAILABLE", SubStatus: "NORMAL",
			TaskStatus: policy.String(""), ActionProgress: map[string]string{}, Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false),
			EnterpriseProjectID: "0", Tags: []policy.Tag{{Key: "env", Value: "prod"}}},
		Key:    &policy.Key{KeyID: dwsfake.ExampleKeyID, KeyState: "2", KeySpec: "AES_256"},
		Tenant: &policy.Tenant{Class: "regulated"},
	}
	if !reflect.DeepEqual(g.Input, want) {
		t.Fatalf("input\n%s\nwant\n%s", js(g.Input), js(want))
	}
	wantProv := facts.Provenance{
		"cluster.version": "DWS ListClusterDetails", "cluster.status": "DWS ListClusterDetails", "cluster.sub_status": "DWS ListClusterDetails",
		"cluster.task_status": "DWS ListClusterDetails", "cluster.action_progress": "DWS ListClusterDetails",
		"cluster.enterprise_project_id": "DWS ListClusterDetails", "cluster.tags": "DWS ListClusterDetails",
		"cluster.encrypted": "DWS ShowClusterEncryptInfo", "cluster.dr_relationship": "DWS ListDisasterRecover",
		"cluster.guest_agent_version": "flag --agent-version",
		"key.key_id":                  "KMS DescribeKey", "key.key_state": "KMS DescribeKey", "key.key_spec": "KMS DescribeKey",
		"tenant.class": "inventory clusters.csv",
	}
	if !reflect.DeepEqual(g.Provenance, wantProv) {
		t.Errorf("provenance\n%s\nwant\n%s", js(g.Provenance), js(wantProv))
	}
	if g.Stats.Requests != 4 || g.Stats.Retries != 0 {
		t.Errorf("stats %+v, want 4 requests", g.Stats)
	}
	// The credential came from the environment and was used for the requested project.
	for _, r := range srv.Requests() {
		if r.ProjectID != dwsfake.ExampleProjectID || !strings.Contains(r.Header.Get("Authorization"), "Access="+dwsfake.TestAK) {
			t.Errorf("%s %s: project %s, Authorization %q", r.Method, r.Path, r.ProjectID, r.Header.Get("Authorization"))
		}
	}

	// Without the flag the inventory's version stands, and says so.
	req.AgentVersion = ""
	g, err = dwsapi.GatherCheck(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if g.Input.Cluster.GuestAgentVersion != "8.3.0.100" || g.Provenance["cluster.guest_agent_version"] != "inventory clusters.csv" {
		t.Errorf("agent version %q from %q", g.Input.Cluster.GuestAgentVersion, g.Provenance["cluster.guest_agent_version"])
	}
}

// signaturePart finds the Signature= part of the SDK's Authorization header the fake received.
var signaturePart = regexp.MustCompile(`Signature=([0-9a-f]+)`)

func TestGatherCheckFailuresNameTheCallAndStatus(t *testing.T) {
	fromEnvironment(t)
	t.Setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", "PrecheckFakeSecurityTokenValue0001")
	cases := []struct {
		endpoint dwsfake.Endpoint
		target   string
		op       string
		status   int
	}{
		{dwsfake.ListClusterDetails, dwsfake.ExampleClusterID, "DWS ListClusterDetails", 500},
		{dwsfake.ShowClusterEncryptInfo, dwsfake.ExampleClusterID, "DWS ShowClusterEncryptInfo", 503},
		{dwsfake.ListDisasterRecover, dwsfake.ExampleProjectID, "DWS ListDisasterRecover", 403},
		{dwsfake.DescribeKey, dwsfake.ExampleKeyID, "KMS DescribeKey", 500},
	}
	for _, c := range cases {
		t.Run(string(c.endpoint), func(t *testing.T) {
			srv := dwsfake.New()
			defer srv.Close()
			srv.SeedExample()
			// The error body echoes every request header back: AK, signature, security token.
			srv.FailFor(c.endpoint, c.target, dwsfake.Fault{Status: c.status, ErrorCode: "FAKE.0001", Echo: true,
				ErrorMsg: "ak=" + dwsfake.TestAK + " sk=" + dwsfake.TestSK})
			_, err := dwsapi.GatherCheck(context.Background(), exampleCheck(srv))
			var de *dwsapi.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *dwsapi.Error", err, err)
			}
			if de.Op != c.op || de.Status() != c.status {
				t.Errorf("Op %q, Status %d; want %q, %d", de.Op, de.Status(), c.op, c.status)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.op) || !strings.Contains(msg, "HTTP "+strconv.Itoa(c.status)) {
				t.Errorf("error %q does not name the call and status", msg)
			}
			secrets := []string{dwsfake.TestAK, dwsfake.TestSK, "PrecheckFakeSecurityTokenValue0001"}
			var echoed bool
			for _, r := range srv.Requests() {
				if r.Endpoint == c.endpoint {
					m := signaturePart.FindStringSubmatch(r.Header.Get("Authorization"))
					if m == nil {
						t.Fatalf("no signature in %q", r.Header.Get("Authorization"))
					}
					secrets = append(secrets, m[1], r.Header.Get("Authorization"))
					echoed = true
				}
			}
			if !echoed {
				t.Fatal("the failing call never reached the fake")
			}
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error contains a secret %q: %s", s, msg)
				}
			}
			if !strings.Contains(msg, "[REDACTED]") {
				t.Errorf("nothing was redacted, so nothing was echoed? %s", msg)
			}
		})
	}
}

func TestTransportRetriesThrottledCalls(t *testing.T) {
	fromEnvironment(t)
	srv := dwsfake.New()
	defer srv.Close()
	srv.SeedExample()
	// A 429 asking for a second's wait, and a throttling code under another status: both retried.
	srv.FailFor(dwsfake.ListClusterDetails, dwsfake.ExampleClusterID, dwsfake.Fault{Status: 429, ErrorCode: "APIGW.0308",
		ErrorMsg: "The throttling threshold has been reached", Header: http.Header{"Retry-After": {"1"}}, Times: 1})
	srv.FailFor(dwsfake.DescribeKey, dwsfake.ExampleKeyID, dwsfake.Fault{Status: 403, ErrorCode: "APIG.0308", ErrorMsg: "throttled", Times: 2})
	start := time.Now()
	g, err := dwsapi.GatherCheck(context.Background(), exampleCheck(srv))
	if err != nil {
		t.Fatal(err)
	}
	if g.Stats.Retries != 3 || g.Stats.Throttled != 3 || g.Stats.Requests != 7 || g.Stats.GaveUp != 0 {
		t.Errorf("stats %+v, want 3 retries of 7 requests", g.Stats)
	}
	// Retry-After was honoured: the retry came at least a second after the throttled answer.
	var times []time.Time
	for _, r := range srv.Requests() {
		if r.Endpoint == dwsfake.ListClusterDetails {
			times = append(times, r.Received)
		}
	}
	if len(times) != 2 || times[1].Sub(times[0]) < time.Second {
		t.Errorf("ListClusterDetails at %v: want two, a second apart (elapsed %v)", times, time.Since(start))
	}
}

func TestTransportGivesUp(t *testing.T) {
	fromEnvironment(t)
	srv := dwsfake.New()
	defer srv.Close()
	srv.SeedExample()
	srv.Throttle(dwsfake.Throttling{Endpoints: []dwsfake.Endpoint{dwsfake.ShowClusterEncryptInfo}, Every: 1, RetryAfter: 0})
	req := exampleCheck(srv)
	req.Policy.MaxRetries = 2
	_, err := dwsapi.GatherCheck(context.Background(), req)
	var de *dwsapi.Error
	if !errors.As(err, &de) || de.Status() != 429 || de.Op != "DWS ShowClusterEncryptInfo" || !strings.Contains(err.Error(), "APIGW.0308") {
		t.Fatalf("error %v, want the 429 APIGW.0308 of ShowClusterEncryptInfo", err)
	}
	if n := srv.Hits(dwsfake.ShowClusterEncryptInfo); n != 3 {
		t.Errorf("%d attempts, want 1 + 2 retries", n)
	}

	// A Retry-After past MaxRetryAfter is not waited for.
	srv.Throttle(dwsfake.Throttling{Endpoints: []dwsfake.Endpoint{dwsfake.ShowClusterEncryptInfo}, Every: 1, RetryAfter: time.Hour})
	start := time.Now()
	if _, err := dwsapi.GatherCheck(context.Background(), exampleCheck(srv)); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("error %v after %v; want a prompt 429", err, time.Since(start))
	}
}

func TestTransportStopsWithItsContext(t *testing.T) {
	fromEnvironment(t)
	srv := dwsfake.New()
	defer srv.Close()
	srv.SeedExample()
	srv.Throttle(dwsfake.Throttling{Every: 1, RetryAfter: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := dwsapi.GatherCheck(ctx, exampleCheck(srv))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("error %v after %v; want the context's end, promptly", err, time.Since(start))
	}
}

func TestConnectRefusesWhatItCannotUse(t *testing.T) {
	fromEnvironment(t)
	tr := dwsapi.NewTransport(context.Background(), nil, dwsapi.CallPolicy{})
	for _, c := range []struct {
		target dwsapi.Target
		want   string
	}{
		{dwsapi.Target{Region: "cn-north-4"}, "project ID"},
		{dwsapi.Target{ProjectID: "../x", Region: "cn-north-4"}, "project ID"},
		{dwsapi.Target{ProjectID: dwsfake.ExampleProjectID}, "region or an endpoint"},
		{dwsapi.Target{ProjectID: dwsfake.ExampleProjectID, Region: "xx-nowhere-9"}, "not in the SDK's DWS region catalogue"},
	} {
		_, err := dwsapi.Connect(c.target, tr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Connect(%+v) = %v, want %q", c.target, err, c.want)
		}
	}
	// A catalogued region needs no network to connect (the project is given, so no IAM look-up).
	c, err := dwsapi.Connect(dwsapi.Target{ProjectID: dwsfake.ExampleProjectID, Region: "cn-north-4"}, tr)
	if err != nil || c.DWS == nil || c.KMS == nil {
		t.Fatalf("Connect(cn-north-4) = %v", err)
	}
}

func TestListClusters(t *testing.T) {
	fromEnvironment(t)
	srv := dwsfake.New()
	defer srv.Close()
	for _, c := range dwsfake.GenerateClusters(40, dwsfake.ExampleProjectID, "0123456789abcdef0123456789abcdef") {
		srv.PutCluster(c)
	}
	tr := dwsapi.NewTransport(context.Background(), nil, dwsapi.CallPolicy{})
	c, err := dwsapi.Connect(dwsapi.Target{ProjectID: dwsfake.ExampleProjectID, Endpoint: srv.URL}, tr)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dwsapi.ListClusters(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 20 || list[0].ID != dwsfake.GeneratedClusterID(0) {
		t.Fatalf("%d listed (%v), want the project's 20", len(list), list)
	}

	srv.SetListLimit(15)
	_, err = dwsapi.ListClusters(c)
	var de *dwsapi.Error
	if !errors.Is(err, dwsapi.ErrIncompleteList) || !errors.As(err, &de) || de.Op != "DWS ListClusters" {
		t.Fatalf("error %v, want an incomplete list from DWS ListClusters", err)
	}
	if !strings.Contains(err.Error(), "15 clusters of the 20") {
		t.Errorf("error %q does not say how many are missing", err)
	}
	srv.SetListLimit(0)

	srv.FailFor(dwsfake.ListClusters, dwsfake.ExampleProjectID, dwsfake.Fault{Status: 401, ErrorCode: "APIGW.0301", ErrorMsg: "bad AK " + dwsfake.TestAK})
	_, err = dwsapi.ListClusters(c)
	if !errors.As(err, &de) || de.Status() != 401 || strings.Contains(err.Error(), dwsfake.TestAK) {
		t.Fatalf("error %v, want a redacted 401", err)
	}
}
