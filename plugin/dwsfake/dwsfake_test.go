package dwsfake_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
	kms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2"
	kmsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2/model"

	"github.com/precheck/precheck/plugin/dwsfake"
)

func newServer(t *testing.T) *dwsfake.Server {
	t.Helper()
	srv := dwsfake.New()
	t.Cleanup(srv.Close)
	return srv
}

func dwsClient(t *testing.T, srv *dwsfake.Server, rt http.RoundTripper) *dws.DwsClient {
	t.Helper()
	c, err := srv.DWSClient(dwsfake.ExampleProjectID, rt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func kmsClient(t *testing.T, srv *dwsfake.Server) *kms.KmsClient {
	t.Helper()
	c, err := srv.KMSClient(dwsfake.ExampleProjectID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exampleEncryptRequest(clusterID string) *dwsmodel.EncryptClusterRequest {
	name := dwsfake.ExampleKeyName
	return &dwsmodel.EncryptClusterRequest{
		ClusterId: clusterID,
		Body: &dwsmodel.EncryptClusterReq{Encrypt: &dwsmodel.EncryptCluster{
			MasterKeyId:    dwsfake.ExampleKeyID,
			MasterKeyName:  &name,
			CryptAlgorithm: "generalCipher",
		}},
	}
}

// serviceError asserts that err is the SDK's service error and returns it.
func serviceError(t *testing.T, err error) *sdkerr.ServiceResponseError {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sdkerr.ServiceResponseError", err, err)
	}
	return se
}

func TestEncryptClusterReachesTheFake(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)

	resp, err := client.EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID))
	if err != nil {
		t.Fatal(err)
	}
	if resp.JobId == nil || *resp.JobId != dwsfake.ExampleJobID {
		t.Fatalf("job_id = %v, want %s", resp.JobId, dwsfake.ExampleJobID)
	}
	if resp.HttpStatusCode != http.StatusOK {
		t.Errorf("HttpStatusCode = %d", resp.HttpStatusCode)
	}
	if got := srv.Hits(dwsfake.EncryptCluster); got != 1 {
		t.Fatalf("encrypt hits = %d, want 1", got)
	}
	calls := srv.EncryptCalls()
	if len(calls) != 1 {
		t.Fatalf("encrypt calls = %d, want 1", len(calls))
	}
	call := calls[0]
	if call.ProjectID != dwsfake.ExampleProjectID || call.ClusterID != dwsfake.ExampleClusterID {
		t.Errorf("path params = %q %q", call.ProjectID, call.ClusterID)
	}
	if call.Path != "/v2/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID+"/encrypt" {
		t.Errorf("path = %s", call.Path)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(call.Body, &body); err != nil {
		t.Fatalf("body %q: %v", call.Body, err)
	}
	want := map[string]any{"crypt_algorithm": "generalCipher", "master_key_id": dwsfake.ExampleKeyID, "master_key_name": dwsfake.ExampleKeyName}
	for k, v := range want {
		if body["encrypt"][k] != v {
			t.Errorf("body encrypt.%s = %v, want %v (body %s)", k, body["encrypt"][k], v, call.Body)
		}
	}
	if len(body["encrypt"]) != len(want) {
		t.Errorf("body has extra members: %s", call.Body)
	}
	if ct := call.Header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if a := call.Header.Get("Authorization"); !strings.HasPrefix(a, "SDK-HMAC-SHA256 Access="+dwsfake.TestAK+",") || !strings.Contains(a, "Signature=") {
		t.Errorf("Authorization = %q, want an SDK-HMAC-SHA256 signature by the test AK", a)
	}
	if call.Header.Get("X-Sdk-Date") == "" {
		t.Error("X-Sdk-Date missing")
	}
	if got := call.Header.Get("X-Project-Id"); got != dwsfake.ExampleProjectID {
		t.Errorf("X-Project-Id = %q", got)
	}
	if call.Status != http.StatusOK || call.JobID != dwsfake.ExampleJobID || call.RequestID == "" {
		t.Errorf("record = status %d job %q request id %q", call.Status, call.JobID, call.RequestID)
	}

	// A second accepted call gets another job.
	resp2, err := client.EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID))
	if err != nil {
		t.Fatal(err)
	}
	if *resp2.JobId == *resp.JobId || len(*resp2.JobId) != 32 {
		t.Errorf("second job_id = %s", *resp2.JobId)
	}
}

func TestInjectedErrorSurfacesAsServiceError(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)
	srv.Fail(dwsfake.EncryptCluster, dwsfake.Fault{Status: http.StatusConflict, ErrorCode: "DWS.0011", ErrorMsg: "Another operation is in progress."})

	_, err := client.EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID))
	se := serviceError(t, err)
	calls := srv.EncryptCalls()
	if len(calls) != 1 {
		t.Fatalf("encrypt calls = %d", len(calls))
	}
	if se.StatusCode != http.StatusConflict || se.ErrorCode != "DWS.0011" || se.ErrorMessage != "Another operation is in progress." {
		t.Errorf("service error = %+v", se)
	}
	if se.RequestId == "" || se.RequestId != calls[0].RequestID {
		t.Errorf("RequestId = %q, the fake answered X-Request-Id %q", se.RequestId, calls[0].RequestID)
	}
	if calls[0].Status != http.StatusConflict {
		t.Errorf("recorded status = %d", calls[0].Status)
	}

	srv.Heal(dwsfake.EncryptCluster)
	if _, err := client.EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID)); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
}

// TestSDKErrorParsing pins down what the SDK reads from an error answer: the gate answers refusals itself
// and must be read the same way.
func TestSDKErrorParsing(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		header   http.Header
		wantCode string
		wantMsg  string
		wantReq  string
	}{
		{name: "error_code and error_msg", status: 403, body: `{"error_code":"PRECHECK-ALG-001","error_msg":"regulated tenants must use SMcompatible"}`,
			wantCode: "PRECHECK-ALG-001", wantMsg: "regulated tenants must use SMcompatible"},
		{name: "code and message fallback", status: 400, body: `{"code":"X.1","message":"m"}`, wantCode: "X.1", wantMsg: "m"},
		{name: "nested under error", status: 404, body: `{"error":{"error_code":"KMS.0207","error_msg":"The key does not exist."}}`,
			wantCode: "KMS.0207", wantMsg: "The key does not exist."},
		{name: "error_code without error_msg is not read", status: 409, body: `{"error_code":"DWS.0011"}`,
			wantCode: "", wantMsg: `{"error_code":"DWS.0011"}`},
		{name: "error_code wins over code", status: 400, body: `{"error_code":"A.1","error_msg":"a","code":"B.1","message":"b"}`,
			wantCode: "A.1", wantMsg: "a"},
		{name: "not JSON", status: 502, body: `bad gateway`, wantCode: "", wantMsg: "bad gateway"},
		{name: "X-Request-Id header", status: 403, body: `{"error_code":"P.1","error_msg":"no"}`,
			header: http.Header{"X-Request-Id": {"req-123"}}, wantCode: "P.1", wantMsg: "no", wantReq: "req-123"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newServer(t)
			srv.SeedExample()
			srv.Fail(dwsfake.EncryptCluster, dwsfake.Fault{Status: c.status, Body: []byte(c.body), Header: c.header})
			_, err := dwsClient(t, srv, nil).EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID))
			se := serviceError(t, err)
			if se.StatusCode != c.status || se.ErrorCode != c.wantCode || se.ErrorMessage != c.wantMsg {
				t.Errorf("got status %d code %q msg %q, want %d %q %q", se.StatusCode, se.ErrorCode, se.ErrorMessage, c.status, c.wantCode, c.wantMsg)
			}
			if c.wantReq != "" && se.RequestId != c.wantReq {
				t.Errorf("RequestId = %q, want %q", se.RequestId, c.wantReq)
			}
		})
	}
}

func TestUnknownClusterIsNotFound(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)
	other := "11111111-2222-3333-4444-555555555555"

	_, err := client.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: other})
	se := serviceError(t, err)
	if se.StatusCode != http.StatusNotFound || se.ErrorCode != dwsfake.CodeNotFound {
		t.Errorf("unknown cluster: %+v", se)
	}
	_, err = client.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: other})
	if se := serviceError(t, err); se.ErrorCode != dwsfake.CodeNotFound {
		t.Errorf("encrypt info of unknown cluster: %+v", se)
	}
	_, err = client.EncryptCluster(exampleEncryptRequest(other))
	if se := serviceError(t, err); se.ErrorCode != dwsfake.CodeNotFound {
		t.Errorf("encrypt of unknown cluster: %+v", se)
	}
	if srv.Hits(dwsfake.EncryptCluster) != 1 || len(srv.EncryptCalls()) != 1 {
		t.Errorf("refused encrypt call not recorded")
	}

	// The example cluster lives in the example project only.
	otherProject, err := srv.DWSClient("0123456789abcdef0123456789abcdef", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = otherProject.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
	if se := serviceError(t, err); se.ErrorCode != dwsfake.CodeNotFound {
		t.Errorf("cluster of another project: %+v", se)
	}

	srv.SetNotFoundStatus(http.StatusForbidden)
	_, err = client.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: other})
	if se := serviceError(t, err); se.StatusCode != http.StatusForbidden {
		t.Errorf("SetNotFoundStatus(403): %+v", se)
	}
}

func TestFactEndpointsThroughSDK(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)

	details, err := client.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
	if err != nil {
		t.Fatal(err)
	}
	c := details.Cluster
	if c == nil || c.Id != dwsfake.ExampleClusterID || c.Version != "8.1.3.310" || c.Status != "AVAILABLE" ||
		c.SubStatus != "NORMAL" || c.TaskStatus != "" || c.EnterpriseProjectId != "0" {
		t.Fatalf("cluster = %v", details)
	}
	if len(c.Tags) != 1 || c.Tags[0].Key != "env" || c.Tags[0].Value != "prod" {
		t.Errorf("tags = %v", c.Tags)
	}
	if c.ActionProgress == nil || len(c.ActionProgress) != 0 {
		t.Errorf("action_progress = %#v, want empty", c.ActionProgress)
	}

	info, err := client.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID})
	if err != nil {
		t.Fatal(err)
	}
	if info.MasterKeyId != nil || info.CryptAlgorithm != nil {
		t.Errorf("ordinary cluster has encrypt info %v", info)
	}
	if !srv.SetEncryption(dwsfake.ExampleClusterID, &dwsfake.Encryption{MasterKeyID: dwsfake.ExampleKeyID, MasterKeyName: dwsfake.ExampleKeyName, CryptAlgorithm: "SMcompatible"}) {
		t.Fatal("SetEncryption: cluster unknown")
	}
	info, err = client.ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID})
	if err != nil {
		t.Fatal(err)
	}
	if info.MasterKeyId == nil || *info.MasterKeyId != dwsfake.ExampleKeyID || *info.CryptAlgorithm != "SMcompatible" {
		t.Errorf("encrypted cluster info = %v", info)
	}

	drs, err := client.ListDisasterRecover(&dwsmodel.ListDisasterRecoverRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if drs.DisasterRecovery == nil || len(*drs.DisasterRecovery) != 0 {
		t.Errorf("DR list = %v, want empty", drs)
	}
	id := srv.AddDisasterRecovery("aaaaaaaa-0000-0000-0000-000000000001", dwsfake.ExampleClusterID)
	srv.AddDisasterRecovery("aaaaaaaa-0000-0000-0000-000000000002", "aaaaaaaa-0000-0000-0000-000000000003")
	standby := dwsfake.ExampleClusterID
	drs, err = client.ListDisasterRecover(&dwsmodel.ListDisasterRecoverRequest{StandbyClusterId: &standby})
	if err != nil {
		t.Fatal(err)
	}
	if drs.DisasterRecovery == nil || len(*drs.DisasterRecovery) != 1 || *(*drs.DisasterRecovery)[0].Id != id {
		t.Errorf("DR list filtered by standby = %v", drs)
	}
	if q := srv.Requests()[len(srv.Requests())-1].RawQuery; q != "standby_cluster_id="+standby {
		t.Errorf("query = %q", q)
	}

	kc := kmsClient(t, srv)
	key, err := kc.ListKeyDetail(&kmsmodel.ListKeyDetailRequest{Body: &kmsmodel.OperateKeyRequestBody{KeyId: dwsfake.ExampleKeyID}})
	if err != nil {
		t.Fatal(err)
	}
	if k := key.KeyInfo; k == nil || *k.KeyId != dwsfake.ExampleKeyID || *k.KeyState != "2" || k.KeySpec.Value() != "AES_256" || *k.KeyAlias != dwsfake.ExampleKeyName {
		t.Errorf("key = %v", key)
	}
	_, err = kc.ListKeyDetail(&kmsmodel.ListKeyDetailRequest{Body: &kmsmodel.OperateKeyRequestBody{KeyId: "no-such-key"}})
	if se := serviceError(t, err); se.StatusCode != http.StatusNotFound || se.ErrorCode != dwsfake.CodeKeyNotFound {
		t.Errorf("unknown key: %+v", se)
	}

	for e, want := range map[dwsfake.Endpoint]int{dwsfake.ListClusterDetails: 1, dwsfake.ShowClusterEncryptInfo: 2,
		dwsfake.ListDisasterRecover: 2, dwsfake.DescribeKey: 2} {
		if got := srv.Hits(e); got != want {
			t.Errorf("hits(%s) = %d, want %d", e, got, want)
		}
	}
	if got := srv.Hits(dwsfake.EncryptCluster); got != 0 {
		t.Errorf("hits(EncryptCluster) = %d", got)
	}
}

func TestOmitAndRaw(t *testing.T) {
	srv := newServer(t)
	c := dwsfake.ExampleCluster()
	c.Omit = []string{"task_status", "action_progress"}
	srv.PutCluster(c)
	raw := rawGet(t, srv, "/v1.0/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID)
	var body map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["cluster"]["task_status"]; ok {
		t.Errorf("task_status not omitted: %s", raw)
	}
	if string(body["cluster"]["version"]) != `"8.1.3.310"` {
		t.Errorf("version = %s", body["cluster"]["version"])
	}

	c.Raw = json.RawMessage(`{"id":"x","task_status":7}`)
	srv.PutCluster(c)
	raw = rawGet(t, srv, "/v1.0/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID)
	if string(raw) != `{"cluster":{"id":"x","task_status":7}}` {
		t.Errorf("raw answer = %s", raw)
	}
}

// rawGet sends an unsigned-but-headed GET (the fake checks presence, not validity, of the signing headers).
func rawGet(t *testing.T, srv *dwsfake.Server, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=x, SignedHeaders=x, Signature=x")
	req.Header.Set("X-Sdk-Date", "20240101T000000Z")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func TestUnsignedRequestIsRefused(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	resp, err := http.Post(srv.URL+"/v2/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID+"/encrypt",
		"application/json", strings.NewReader(`{"encrypt":{"master_key_id":"k","crypt_algorithm":"generalCipher"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), dwsfake.CodeAuthFailed) {
		t.Errorf("unsigned: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	calls := srv.EncryptCalls()
	if len(calls) != 1 || string(calls[0].Body) != `{"encrypt":{"master_key_id":"k","crypt_algorithm":"generalCipher"}}` {
		t.Errorf("unsigned call not recorded with its exact body: %+v", calls)
	}

	srv.SetRequireSigning(false)
	resp, err = http.Post(srv.URL+"/v2/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID+"/encrypt",
		"application/json", strings.NewReader(`{"encrypt":{"master_key_id":"k","crypt_algorithm":"generalCipher"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signing not required: status %d", resp.StatusCode)
	}
}

func TestMalformedEncryptBody(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	srv.SetRequireSigning(false)
	for body, code := range map[string]string{
		``:                                    dwsfake.CodeEmptyRequest,
		`{}`:                                  dwsfake.CodeBadParameter,
		`{"encrypt":{"crypt_algorithm":"x"}}`: dwsfake.CodeBadParameter,
		`{"encrypt":{"master_key_id":"k"}}`:   dwsfake.CodeBadParameter,
		`{"encrypt":{"master_key_id":1,"crypt_algorithm":"x"}}`: dwsfake.CodeBadParameter,
	} {
		resp, err := http.Post(srv.URL+"/v2/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID+"/encrypt",
			"application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), code) {
			t.Errorf("body %q: %d %s, want 400 %s", body, resp.StatusCode, b, code)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	srv := newServer(t)
	resp, err := http.Get(srv.URL + "/v3/nothing")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), dwsfake.CodeNoSuchAPI) {
		t.Errorf("unknown path: %d %s", resp.StatusCode, b)
	}
}

func TestDelayPastClientTimeout(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Delay: time.Minute})
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{srv.URL}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(dwsfake.TestAK).WithSk(dwsfake.TestSK).WithProjectId(dwsfake.ExampleProjectID).Build()).
		WithHttpConfig(config.DefaultHttpConfig().WithTimeout(100 * time.Millisecond)).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = dws.NewDwsClient(hc).ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
	if err == nil {
		t.Fatal("no error from a call delayed past the client timeout")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("call took %v", d)
	}
	var se *sdkerr.ServiceResponseError
	if errors.As(err, &se) {
		t.Errorf("a timeout surfaced as a service error: %v", err)
	}
	if srv.Hits(dwsfake.ListClusterDetails) != 1 {
		t.Errorf("hits = %d", srv.Hits(dwsfake.ListClusterDetails))
	}
	// Other endpoints are unaffected; a delay-only fault answers normally afterwards.
	if _, err := dws.NewDwsClient(hc).ShowClusterEncryptInfo(&dwsmodel.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
		t.Errorf("other endpoint: %v", err)
	}
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Delay: 10 * time.Millisecond})
	if _, err := dwsClient(t, srv, nil).ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
		t.Errorf("short delay: %v", err)
	}
}

func TestCloseDoesNotWaitForDelays(t *testing.T) {
	srv := dwsfake.New()
	srv.SeedExample()
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Delay: time.Hour})
	client := dwsClient(t, srv, nil)
	done := make(chan error, 1)
	go func() {
		_, err := client.ListClusterDetails(&dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
		done <- err
	}()
	for srv.Hits(dwsfake.ListClusterDetails) == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a delayed answer")
	}
	if err := <-done; err == nil {
		t.Error("delayed call succeeded after Close")
	}
	srv.Close() // idempotent
}

func TestFaultTimes(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Status: 503, Times: 2})
	req := &dwsmodel.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}
	for i := range 2 {
		_, err := client.ListClusterDetails(req)
		if se := serviceError(t, err); se.StatusCode != 503 || se.ErrorCode != "FAKE.0503" {
			t.Errorf("call %d: %+v", i, se)
		}
	}
	if _, err := client.ListClusterDetails(req); err != nil {
		t.Errorf("third call: %v", err)
	}
}

// TestCustomRoundTripper is the recipe the gate relies on: config.HttpConfig.WithHttpRoundTripper puts a
// RoundTripper under the SDK client, and an answer the RoundTripper makes up in the API's error shape
// surfaces as a normal service error, without reaching the server.
func TestCustomRoundTripper(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()

	var seen atomic.Int32
	var authSeen atomic.Value
	counting := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		seen.Add(1)
		authSeen.Store(r.Header.Get("Authorization"))
		return http.DefaultTransport.RoundTrip(r)
	})
	if _, err := dwsClient(t, srv, counting).EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID)); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 1 || srv.Hits(dwsfake.EncryptCluster) != 1 {
		t.Fatalf("round tripper saw %d requests, server %d", seen.Load(), srv.Hits(dwsfake.EncryptCluster))
	}
	if a, _ := authSeen.Load().(string); !strings.HasPrefix(a, "SDK-HMAC-SHA256 ") {
		t.Errorf("the round tripper saw an unsigned request (Authorization %q): it must run after signing", a)
	}

	refusing := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			r.Body.Close()
		}
		h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"precheck-1"}}
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h, Request: r,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Body: io.NopCloser(strings.NewReader(`{"error_code":"PRECHECK-ALG-001","error_msg":"regulated tenants must use SMcompatible"}`))}, nil
	})
	_, err := dwsClient(t, srv, refusing).EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID))
	se := serviceError(t, err)
	if se.StatusCode != 403 || se.ErrorCode != "PRECHECK-ALG-001" || se.ErrorMessage != "regulated tenants must use SMcompatible" || se.RequestId != "precheck-1" {
		t.Errorf("refusal = %+v", se)
	}
	if srv.Hits(dwsfake.EncryptCluster) != 1 {
		t.Errorf("a refused call reached the server")
	}
}

// TestHttpTransportOverridesRoundTripper documents an SDK trap: when HttpConfig has both an HttpTransport
// and a RoundTripper, the SDK uses the HttpTransport and silently ignores the RoundTripper.
func TestHttpTransportOverridesRoundTripper(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	var seen atomic.Int32
	rt := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		seen.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{srv.URL}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(dwsfake.TestAK).WithSk(dwsfake.TestSK).WithProjectId(dwsfake.ExampleProjectID).Build()).
		WithHttpConfig(config.DefaultHttpConfig().WithHttpRoundTripper(rt).WithHttpTransport(&http.Transport{})).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dws.NewDwsClient(hc).EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID)); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 0 || srv.Hits(dwsfake.EncryptCluster) != 1 {
		t.Errorf("round tripper saw %d requests, server %d: the SDK's precedence changed", seen.Load(), srv.Hits(dwsfake.EncryptCluster))
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := newServer(t)
	srv.SeedExample()
	client := dwsClient(t, srv, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := client.EncryptCluster(exampleEncryptRequest(dwsfake.ExampleClusterID)); err != nil {
				t.Error(err)
			}
			_ = srv.Requests()
		})
		wg.Go(func() {
			c := dwsfake.ExampleCluster()
			c.TaskStatus = "SNAPSHOTTING"
			srv.PutCluster(c)
			_ = srv.Hits(dwsfake.EncryptCluster)
		})
	}
	wg.Wait()
	if got := srv.Hits(dwsfake.EncryptCluster); got != 20 {
		t.Errorf("hits = %d, want 20", got)
	}
	if got := len(srv.EncryptCalls()); got != 20 {
		t.Errorf("calls = %d, want 20", got)
	}
	srv.ResetRecords()
	if srv.Hits(dwsfake.EncryptCluster) != 0 || len(srv.Requests()) != 0 {
		t.Error("ResetRecords kept records")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
