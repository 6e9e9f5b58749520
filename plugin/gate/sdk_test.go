package gate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/policy"
)

// inventory supplies what the DWS API cannot: the guestAgent version, and the tenant class.
func inventory(agent, class string) facts.Provider {
	return facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		return &facts.Facts{Cluster: &policy.Cluster{GuestAgentVersion: agent}, Tenant: &policy.Tenant{Class: class}}, nil
	})
}

// setup starts a fake DWS seeded with the API page's example, and returns it with a facts provider that asks
// it through the official SDK.
func setup(t *testing.T, agent, class string) (*dwsfake.Server, facts.Provider) {
	t.Helper()
	srv := dwsfake.New()
	t.Cleanup(srv.Close)
	srv.SeedExample()
	dwsClient, err := srv.DWSClient(dwsfake.ExampleProjectID, nil)
	if err != nil {
		t.Fatal(err)
	}
	kmsClient, err := srv.KMSClient(dwsfake.ExampleProjectID, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dwsapi.New(dwsapi.Config{DWS: dwsClient, KMS: kmsClient, Inventory: inventory(agent, class)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, p
}

// sdkClient is the official SDK's DWS client with the gate as its transport, as a user would install it.
func sdkClient(t *testing.T, srv *dwsfake.Server, g http.RoundTripper) *dws.DwsClient {
	t.Helper()
	c, err := srv.DWSClient(dwsfake.ExampleProjectID, g)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encryptRequest(alg string) *model.EncryptClusterRequest {
	name := dwsfake.ExampleKeyName
	return &model.EncryptClusterRequest{
		ClusterId: dwsfake.ExampleClusterID,
		Body: &model.EncryptClusterReq{Encrypt: &model.EncryptCluster{
			MasterKeyId: dwsfake.ExampleKeyID, MasterKeyName: &name, CryptAlgorithm: alg,
		}},
	}
}

// recorder keeps the encrypt calls the SDK hands to the transport, to compare with what reaches the server.
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	paths   []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && strings.HasSuffix(req.URL.Path, "/encrypt") {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.headers = append(r.headers, req.Header.Clone())
		r.paths = append(r.paths, req.URL.RequestURI())
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func TestSDKAllowedCallReachesTheServerOnce(t *testing.T) {
	srv, provider := setup(t, "8.3.0.200", "default")
	rec := &recorder{next: gate.New(nil, newEngine(t), gate.WithFacts(provider))}
	resp, err := sdkClient(t, srv, rec).EncryptCluster(encryptRequest("generalCipher"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.JobId == nil || *resp.JobId != dwsfake.ExampleJobID {
		t.Errorf("job_id %v", resp.JobId)
	}
	calls := srv.EncryptCalls()
	if len(calls) != 1 || srv.Hits(dwsfake.EncryptCluster) != 1 {
		t.Fatalf("%d encrypt calls reached the server", len(calls))
	}
	if !bytes.Equal(calls[0].Body, rec.bodies[0]) {
		t.Errorf("the server got %q, the SDK sent %q", calls[0].Body, rec.bodies[0])
	}
	if calls[0].Header.Get("Authorization") == "" || calls[0].Header.Get("X-Sdk-Date") == "" {
		t.Errorf("signing headers lost: %v", calls[0].Header)
	}
	// The signature covers the method, path, query, signed headers and body: all arrive as the SDK sent them.
	for name, values := range rec.headers[0] {
		if got := calls[0].Header.Values(name); !slices.Equal(got, values) {
			t.Errorf("header %s: the SDK sent %q, the server got %q", name, values, got)
		}
	}
	if got := calls[0].Path + "?" + calls[0].RawQuery; strings.TrimSuffix(got, "?") != rec.paths[0] {
		t.Errorf("the server got %s, the SDK sent %s", got, rec.paths[0])
	}
	// The facts came from the fake's APIs through the SDK.
	for _, e := range []dwsfake.Endpoint{dwsfake.ListClusterDetails, dwsfake.ShowClusterEncryptInfo, dwsfake.ListDisasterRecover, dwsfake.DescribeKey} {
		if srv.Hits(e) != 1 {
			t.Errorf("%s asked %d times", e, srv.Hits(e))
		}
	}
}

// TestSDKOtherCallsPassThrough: the SDK's other calls on a cluster, reads and a DELETE with a body, reach
// the server unchecked.
func TestSDKOtherCallsPassThrough(t *testing.T) {
	srv, _ := setup(t, "8.3.0.200", "default")
	checked := 0
	client := sdkClient(t, srv, gate.New(nil, newEngine(t), gate.WithObserver(func(gate.Event) { checked++ })))
	if _, err := client.ListClusterDetails(&model.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
		t.Errorf("ListClusterDetails: %v", err)
	}
	if _, err := client.ShowClusterEncryptInfo(&model.ShowClusterEncryptInfoRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil {
		t.Errorf("ShowClusterEncryptInfo: %v", err)
	}
	keep := int32(0)
	// The fake does not serve DeleteCluster: what matters is that the call reached it, body and all.
	client.DeleteCluster(&model.DeleteClusterRequest{ClusterId: dwsfake.ExampleClusterID, Body: &model.DeleteClusterRequestBody{KeepLastManualSnapshot: keep}})
	var got []string
	for _, r := range srv.Requests() {
		if r.Header.Get("Authorization") != "" {
			got = append(got, r.Method+" "+r.Path+" "+strings.TrimSpace(string(r.Body)))
		}
	}
	want := []string{
		"GET /v1.0/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + " ",
		"GET /v1/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + "/encrypt-info ",
		"DELETE /v1.0/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + ` {"keep_last_manual_snapshot":0}`,
	}
	if !slices.Equal(got, want) || checked != 0 {
		t.Errorf("the server got %q, want %q; %d checked", got, want, checked)
	}
}

func TestSDKDeniedCallNeverReachesTheServer(t *testing.T) {
	for _, tt := range []struct {
		name, agent, class, alg string
		prepare                 func(*dwsfake.Server)
		status                  int
		code, says              string
	}{
		{name: "guestAgent too old", agent: "8.3.0.199", class: "default", alg: "generalCipher", status: 409, code: "PRECHECK-VER-002", says: "8.3.0.199 is below the required 8.3.0.200"},
		{name: "regulated tenant", agent: "8.3.0.200", class: "regulated", alg: "generalCipher", status: 403, code: "PRECHECK-TEN-001", says: "not allowed for tenant class regulated"},
		{name: "already encrypted (from encrypt-info)", agent: "8.3.0.200", class: "default", alg: "generalCipher", status: 409, code: "PRECHECK-CLU-003",
			prepare: func(s *dwsfake.Server) {
				s.SetEncryption(dwsfake.ExampleClusterID, &dwsfake.Encryption{MasterKeyID: dwsfake.ExampleKeyID, CryptAlgorithm: "generalCipher"})
			}, says: "already encrypted"},
		{name: "busy (from cluster details)", agent: "8.3.0.200", class: "default", alg: "generalCipher", status: 409, code: "PRECHECK-CLU-002",
			prepare: func(s *dwsfake.Server) {
				c := dwsfake.ExampleCluster()
				c.TaskStatus = "SNAPSHOTTING"
				s.PutCluster(c)
			}, says: "SNAPSHOTTING"},
		{name: "DR (from the DR list)", agent: "8.3.0.200", class: "default", alg: "generalCipher", status: 409, code: "PRECHECK-CLU-004",
			prepare: func(s *dwsfake.Server) {
				s.AddDisasterRecovery(dwsfake.ExampleClusterID, "11111111-2222-3333-4444-555555555555")
			}, says: "disaster-recovery"},
		{name: "disabled key (from KMS)", agent: "8.3.0.200", class: "default", alg: "generalCipher", status: 400, code: "PRECHECK-KEY-002",
			prepare: func(s *dwsfake.Server) {
				k := dwsfake.ExampleKey()
				k.State = "3"
				s.PutKey(k)
			}, says: "disabled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, provider := setup(t, tt.agent, tt.class)
			if tt.prepare != nil {
				tt.prepare(srv)
			}
			_, err := sdkClient(t, srv, gate.New(nil, newEngine(t), gate.WithFacts(provider))).EncryptCluster(encryptRequest(tt.alg))
			var se *sdkerr.ServiceResponseError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want the SDK's service error", err, err)
			}
			if se.StatusCode != tt.status || se.ErrorCode != tt.code || !strings.Contains(se.ErrorMessage, tt.says) || se.RequestId == "" {
				t.Errorf("service error %d %s %q (request id %q)", se.StatusCode, se.ErrorCode, se.ErrorMessage, se.RequestId)
			}
			if n := srv.Hits(dwsfake.EncryptCluster); n != 0 {
				t.Errorf("a refused call reached the server %d times", n)
			}
		})
	}
}

func TestSDKFactsFailureFailsClosed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault dwsfake.Fault
	}{
		{"500 from cluster details", dwsfake.Fault{Status: 500}},
		{"cluster details time out", dwsfake.Fault{Delay: 3 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, provider := setup(t, "8.3.0.200", "default")
			srv.Fail(dwsfake.ListClusterDetails, tt.fault)
			closed := gate.New(nil, newEngine(t), gate.WithFacts(provider), gate.WithTimeout(300*time.Millisecond))
			start := time.Now()
			_, err := sdkClient(t, srv, closed).EncryptCluster(encryptRequest("generalCipher"))
			var se *sdkerr.ServiceResponseError
			if !errors.As(err, &se) || se.StatusCode != 503 || se.ErrorCode != gate.CodeFactsFailed {
				t.Fatalf("err = %v, want 503 %s", err, gate.CodeFactsFailed)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the refusal took %v", took)
			}
			if srv.Hits(dwsfake.EncryptCluster) != 0 {
				t.Fatal("the call reached the server although the facts failed")
			}
			open := gate.New(nil, newEngine(t), gate.WithFacts(provider), gate.WithTimeout(300*time.Millisecond), gate.WithFailOpen())
			resp, err := sdkClient(t, srv, open).EncryptCluster(encryptRequest("generalCipher"))
			if err != nil || *resp.JobId != dwsfake.ExampleJobID || srv.Hits(dwsfake.EncryptCluster) != 1 {
				t.Errorf("fail-open: %v, %d hits", err, srv.Hits(dwsfake.EncryptCluster))
			}
		})
	}
}

// TestNoSecretsInLogsOrEvents: neither the log nor the observed events carry the Authorization header, the
// AK or the SK, whether the call is allowed, refused, or the facts fail with an error that echoes them.
func TestNoSecretsInLogsOrEvents(t *testing.T) {
	srv, provider := setup(t, "8.3.0.199", "default")
	var logs bytes.Buffer
	var mu sync.Mutex
	var events []string
	g := gate.New(nil, newEngine(t), gate.WithFacts(provider),
		gate.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		gate.WithObserver(func(e gate.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, string(mustJSON(t, e)))
		}))
	client := sdkClient(t, srv, g)
	client.EncryptCluster(encryptRequest("generalCipher")) // refused
	srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Status: 500, ErrorMsg: "denied for Authorization: SDK-HMAC-SHA256 Access=" + dwsfake.TestAK + " sk=" + dwsfake.TestSK})
	client.EncryptCluster(encryptRequest("generalCipher")) // facts fail
	calls := srv.Requests()
	if len(calls) == 0 || len(events) != 2 {
		t.Fatalf("%d requests, %d events", len(calls), len(events))
	}
	signature := calls[0].Header.Get("Authorization")
	everything := logs.String() + strings.Join(events, "\n")
	for _, secret := range []string{dwsfake.TestAK, dwsfake.TestSK, signature, "Signature="} {
		if secret != "" && strings.Contains(everything, secret) {
			t.Errorf("%q leaked into the log or an event:\n%s", secret, everything)
		}
	}
	if !strings.Contains(logs.String(), "PRECHECK-VER-002") || !strings.Contains(everything, "gathering facts") {
		t.Errorf("the log and events do not say what happened:\n%s", everything)
	}
}

func TestSDKConcurrentCalls(t *testing.T) {
	srv, provider := setup(t, "8.3.0.200", "default")
	client := sdkClient(t, srv, gate.New(nil, newEngine(t), gate.WithFacts(facts.Cached(provider, time.Minute))))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			alg := "generalCipher"
			if i%2 == 1 {
				alg = "AES" // refused: unknown algorithm
			}
			_, err := client.EncryptCluster(encryptRequest(alg))
			if (err == nil) != (i%2 == 0) {
				t.Errorf("call %d (%s): %v", i, alg, err)
			}
		})
	}
	wg.Wait()
	if n := srv.Hits(dwsfake.EncryptCluster); n != 8 {
		t.Errorf("%d calls reached the server, want the 8 allowed", n)
	}
}
