package dwsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/policy"
)

var exampleRequest = facts.Request{
	ProjectID: dwsfake.ExampleProjectID,
	ClusterID: dwsfake.ExampleClusterID,
	KeyID:     dwsfake.ExampleKeyID,
}

type setup struct {
	srv      *dwsfake.Server
	provider *dwsapi.Provider
}

// newSetup starts a fake seeded with the API page's example and a provider over real SDK clients pointed
// at it. withKMS false leaves Config.KMS nil.
func newSetup(t *testing.T, withKMS bool, inventory facts.Provider) setup {
	t.Helper()
	srv := dwsfake.New()
	t.Cleanup(srv.Close)
	srv.SeedExample()
	dc, err := srv.DWSClient(dwsfake.ExampleProjectID, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dwsapi.Config{DWS: dc, Inventory: inventory}
	if withKMS {
		if cfg.KMS, err = srv.KMSClient(dwsfake.ExampleProjectID, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := dwsapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return setup{srv: srv, provider: p}
}

func (s setup) facts(t *testing.T, r facts.Request) *facts.Facts {
	t.Helper()
	f, err := s.provider.Facts(context.Background(), r)
	if err != nil {
		t.Fatalf("Facts: %v", err)
	}
	return f
}

// factsError calls Facts expecting an *dwsapi.Error, checks it holds no credentials, and returns it.
func (s setup) factsError(t *testing.T, ctx context.Context, r facts.Request) *dwsapi.Error {
	t.Helper()
	f, err := s.provider.Facts(ctx, r)
	if err == nil {
		t.Fatalf("Facts succeeded: %+v", f)
	}
	if f != nil {
		t.Errorf("Facts returned facts with an error")
	}
	noSecrets(t, err.Error())
	var de *dwsapi.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *dwsapi.Error", err, err)
	}
	return de
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{dwsfake.TestAK, dwsfake.TestSK, "sig0123456789abcdef", "MIIEXAuthTokenValue"} {
		if strings.Contains(s, secret) {
			t.Errorf("error contains a credential %q: %s", secret, s)
		}
	}
}

func TestExampleCluster(t *testing.T) {
	s := newSetup(t, true, nil)
	got := s.facts(t, exampleRequest)
	want := &facts.Facts{
		Cluster: &policy.Cluster{
			Version:             "8.1.3.310",
			Status:              "AVAILABLE",
			SubStatus:           "NORMAL",
			TaskStatus:          policy.String(""),
			ActionProgress:      map[string]string{},
			Encrypted:           policy.Bool(false),
			DRRelationship:      policy.Bool(false),
			EnterpriseProjectID: "0",
			Tags:                []policy.Tag{{Key: "env", Value: "prod"}},
		},
		Key: &policy.Key{KeyID: dwsfake.ExampleKeyID, KeyState: "2", KeySpec: "AES_256"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("facts =\n%s\nwant\n%s", js(got), js(want))
	}
	// task_status "" must survive as present-and-idle, not turn into unknown.
	if got.Cluster.TaskStatus == nil || got.Cluster.ActionProgress == nil {
		t.Error("an idle task status became unknown")
	}
	for _, e := range dwsfake.Endpoints {
		want := 1
		if e == dwsfake.EncryptCluster || e == dwsfake.ListClusters {
			want = 0
		}
		if h := s.srv.Hits(e); h != want {
			t.Errorf("hits(%s) = %d, want %d", e, h, want)
		}
	}
	// What reached the server was signed by the SDK.
	for _, r := range s.srv.Requests() {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "SDK-HMAC-SHA256 Access="+dwsfake.TestAK) || r.Header.Get("X-Sdk-Date") == "" {
			t.Errorf("%s %s not signed: %v", r.Method, r.Path, r.Header)
		}
	}
}

func js(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestVariants(t *testing.T) {
	other := "11111111-2222-3333-4444-555555555555"
	cases := []struct {
		name  string
		setup func(srv *dwsfake.Server)
		check func(t *testing.T, f *facts.Facts)
	}{
		{"encrypted", func(srv *dwsfake.Server) {
			srv.SetEncryption(dwsfake.ExampleClusterID, &dwsfake.Encryption{MasterKeyID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", CryptAlgorithm: "SMcompatible"})
		}, func(t *testing.T, f *facts.Facts) {
			if f.Cluster.Encrypted == nil || !*f.Cluster.Encrypted {
				t.Errorf("encrypted = %v", f.Cluster.Encrypted)
			}
		}},
		{"encrypt info with an empty master key", func(srv *dwsfake.Server) {
			srv.SetEncryption(dwsfake.ExampleClusterID, &dwsfake.Encryption{})
		}, func(t *testing.T, f *facts.Facts) {
			if f.Cluster.Encrypted == nil || *f.Cluster.Encrypted {
				t.Errorf("encrypted = %v", f.Cluster.Encrypted)
			}
		}},
		{"DR standby", func(srv *dwsfake.Server) {
			srv.AddDisasterRecovery(other, dwsfake.ExampleClusterID)
		}, func(t *testing.T, f *facts.Facts) {
			if f.Cluster.DRRelationship == nil || !*f.Cluster.DRRelationship {
				t.Errorf("dr_relationship = %v", f.Cluster.DRRelationship)
			}
		}},
		{"DR primary, stopped", func(srv *dwsfake.Server) {
			srv.PutDisasterRecovery(dwsfake.DisasterRecovery{ID: "dr-1", Status: "stopped", PrimaryClusterID: dwsfake.ExampleClusterID, StandbyClusterID: other})
		}, func(t *testing.T, f *facts.Facts) {
			if f.Cluster.DRRelationship == nil || !*f.Cluster.DRRelationship {
				t.Errorf("dr_relationship = %v", f.Cluster.DRRelationship)
			}
		}},
		{"DR of other clusters only", func(srv *dwsfake.Server) {
			srv.AddDisasterRecovery(other, "66666666-2222-3333-4444-555555555555")
		}, func(t *testing.T, f *facts.Facts) {
			if f.Cluster.DRRelationship == nil || *f.Cluster.DRRelationship {
				t.Errorf("dr_relationship = %v", f.Cluster.DRRelationship)
			}
		}},
		{"busy", func(srv *dwsfake.Server) {
			c := dwsfake.ExampleCluster()
			c.TaskStatus = "SNAPSHOTTING"
			c.ActionProgress = map[string]string{"SNAPSHOTTING": "50%"}
			c.SubStatus = "READONLY | DEGRADED"
			srv.PutCluster(c)
		}, func(t *testing.T, f *facts.Facts) {
			c := f.Cluster
			if c.TaskStatus == nil || *c.TaskStatus != "SNAPSHOTTING" || c.ActionProgress["SNAPSHOTTING"] != "50%" || c.SubStatus != "READONLY | DEGRADED" {
				t.Errorf("cluster = %s", js(c))
			}
		}},
		{"other status and version", func(srv *dwsfake.Server) {
			c := dwsfake.ExampleCluster()
			c.Status, c.Version, c.Tags, c.EnterpriseProjectID = "FROZEN", "7.9.9", nil, "ep-1"
			srv.PutCluster(c)
		}, func(t *testing.T, f *facts.Facts) {
			c := f.Cluster
			if c.Status != "FROZEN" || c.Version != "7.9.9" || c.EnterpriseProjectID != "ep-1" || len(c.Tags) != 0 {
				t.Errorf("cluster = %s", js(c))
			}
		}},
		{"members the API does not return stay unknown", func(srv *dwsfake.Server) {
			c := dwsfake.ExampleCluster()
			c.Omit = []string{"task_status", "action_progress", "version", "tags"}
			srv.PutCluster(c)
		}, func(t *testing.T, f *facts.Facts) {
			c := f.Cluster
			if c.TaskStatus != nil || c.ActionProgress != nil || c.Version != "" || c.Tags != nil || c.Status != "AVAILABLE" {
				t.Errorf("cluster = %s", js(c))
			}
		}},
		{"null task_status is unknown, numeric progress kept", func(srv *dwsfake.Server) {
			c := dwsfake.ExampleCluster()
			c.Raw = json.RawMessage(`{"id":"` + dwsfake.ExampleClusterID + `","status":"AVAILABLE","version":"8.2.0","task_status":null,"action_progress":{"GROWING":50}}`)
			srv.PutCluster(c)
		}, func(t *testing.T, f *facts.Facts) {
			c := f.Cluster
			if c.TaskStatus != nil || c.ActionProgress["GROWING"] != "50" || c.Version != "8.2.0" {
				t.Errorf("cluster = %s", js(c))
			}
		}},
		{"disabled key", func(srv *dwsfake.Server) {
			k := dwsfake.ExampleKey()
			k.State, k.Spec = "3", "SM4"
			srv.PutKey(k)
		}, func(t *testing.T, f *facts.Facts) {
			if f.Key == nil || f.Key.KeyState != "3" || f.Key.KeySpec != "SM4" || f.Key.KeyID != dwsfake.ExampleKeyID {
				t.Errorf("key = %+v", f.Key)
			}
		}},
		{"key answer without state", func(srv *dwsfake.Server) {
			srv.PutKey(dwsfake.Key{ID: dwsfake.ExampleKeyID, Raw: json.RawMessage(`{"key_id":"` + dwsfake.ExampleKeyID + `"}`)})
		}, func(t *testing.T, f *facts.Facts) {
			if f.Key == nil || f.Key.KeyState != "" || f.Key.KeySpec != "" || f.Key.KeyID != dwsfake.ExampleKeyID {
				t.Errorf("key = %+v", f.Key)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, true, nil)
			c.setup(s.srv)
			c.check(t, s.facts(t, exampleRequest))
		})
	}
}

func TestKeyFactsNeedKMSAndKeyID(t *testing.T) {
	s := newSetup(t, false, nil)
	if f := s.facts(t, exampleRequest); f.Key != nil {
		t.Errorf("key facts without a KMS client: %+v", f.Key)
	}
	s = newSetup(t, true, nil)
	r := exampleRequest
	r.KeyID = ""
	if f := s.facts(t, r); f.Key != nil || f.Cluster == nil {
		t.Errorf("facts without a key id: %+v", f)
	}
	if h := s.srv.Hits(dwsfake.DescribeKey); h != 0 {
		t.Errorf("DescribeKey hits = %d", h)
	}
	// An empty project ID in the request means the client's project.
	r.ProjectID = ""
	s.facts(t, r)
}

func TestUnknownClusterIsAnError(t *testing.T) {
	s := newSetup(t, true, nil)
	r := exampleRequest
	r.ClusterID = "11111111-2222-3333-4444-555555555555"
	de := s.factsError(t, context.Background(), r)
	if de.Fact != dwsapi.FactCluster && de.Fact != dwsapi.FactEncrypted {
		t.Errorf("fact = %q", de.Fact)
	}
	var se *sdkerr.ServiceResponseError
	if !errors.As(de, &se) || se.StatusCode != http.StatusNotFound || se.ErrorCode != dwsfake.CodeNotFound {
		t.Errorf("cause = %v", de.Err)
	}
	if !errors.Is(de, facts.ErrNotFound) {
		t.Errorf("%v is not a facts.ErrNotFound: a gate failing open would forward it", de)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	s := newSetup(t, true, nil)
	r := exampleRequest
	r.KeyID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	de := s.factsError(t, context.Background(), r)
	var se *sdkerr.ServiceResponseError
	if de.Fact != dwsapi.FactKey || !errors.As(de, &se) || se.ErrorCode != dwsfake.CodeKeyNotFound {
		t.Errorf("error = %v", de)
	}
	if !errors.Is(de, facts.ErrNotFound) {
		t.Errorf("%v is not a facts.ErrNotFound: a gate failing open would forward it", de)
	}
}

func TestFailingEndpointIsNamed(t *testing.T) {
	cases := map[dwsfake.Endpoint]struct{ fact, op string }{
		dwsfake.ListClusterDetails:     {dwsapi.FactCluster, "ListClusterDetails"},
		dwsfake.ShowClusterEncryptInfo: {dwsapi.FactEncrypted, "ShowClusterEncryptInfo"},
		dwsfake.ListDisasterRecover:    {dwsapi.FactDRRelationship, "ListDisasterRecover"},
		dwsfake.DescribeKey:            {dwsapi.FactKey, "DescribeKey"},
	}
	for e, want := range cases {
		t.Run(string(e), func(t *testing.T) {
			s := newSetup(t, true, nil)
			s.srv.Fail(e, dwsfake.Fault{Status: http.StatusServiceUnavailable, ErrorCode: "DWS.9999", ErrorMsg: "service unavailable"})
			de := s.factsError(t, context.Background(), exampleRequest)
			if de.Fact != want.fact || !strings.Contains(de.Op, want.op) {
				t.Errorf("error names %q (%s), want %q (%s)", de.Fact, de.Op, want.fact, want.op)
			}
			if !strings.Contains(de.Error(), want.fact) || !strings.Contains(de.Error(), want.op) {
				t.Errorf("message does not name the fact and call: %s", de)
			}
			var se *sdkerr.ServiceResponseError
			if !errors.As(de, &se) || se.StatusCode != http.StatusServiceUnavailable || se.ErrorCode != "DWS.9999" {
				t.Errorf("cause = %#v", de.Err)
			}
			if errors.Is(de, facts.ErrNotFound) {
				t.Errorf("an unavailable endpoint is precheck's dependency failing, not a call naming nothing: %v", de)
			}
		})
	}
}

func TestMalformedAnswersAreErrors(t *testing.T) {
	cases := []struct {
		name string
		e    dwsfake.Endpoint
		body string
		fact string
	}{
		{"cluster missing", dwsfake.ListClusterDetails, `{}`, dwsapi.FactCluster},
		{"task_status not a string", dwsfake.ListClusterDetails, `{"cluster":{"task_status":3}}`, dwsapi.FactCluster},
		{"another cluster", dwsfake.ListClusterDetails, `{"cluster":{"id":"99999999-2222-3333-4444-555555555555","status":"AVAILABLE"}}`, dwsapi.FactCluster},
		{"encrypt info not JSON", dwsfake.ShowClusterEncryptInfo, `<html>`, dwsapi.FactEncrypted},
		{"key_info missing", dwsfake.DescribeKey, `{}`, dwsapi.FactKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, true, nil)
			s.srv.Fail(c.e, dwsfake.Fault{Status: http.StatusOK, Body: []byte(c.body)})
			if de := s.factsError(t, context.Background(), exampleRequest); de.Fact != c.fact {
				t.Errorf("fact = %q, want %q (%v)", de.Fact, c.fact, de)
			}
		})
	}
}

func TestDRListingWithoutMemberIsUnknown(t *testing.T) {
	s := newSetup(t, true, nil)
	s.srv.Fail(dwsfake.ListDisasterRecover, dwsfake.Fault{Status: http.StatusOK, Body: []byte(`{}`)})
	if f := s.facts(t, exampleRequest); f.Cluster.DRRelationship != nil {
		t.Errorf("dr_relationship = %v, want unknown", *f.Cluster.DRRelationship)
	}
}

func TestSlowEndpointAndShortDeadline(t *testing.T) {
	for _, e := range []dwsfake.Endpoint{dwsfake.ListClusterDetails, dwsfake.DescribeKey} {
		t.Run(string(e), func(t *testing.T) {
			s := newSetup(t, true, nil)
			s.srv.Fail(e, dwsfake.Fault{Delay: 5 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			start := time.Now()
			de := s.factsError(t, ctx, exampleRequest)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Facts took %v with a 150ms deadline", d)
			}
			if !errors.Is(de, context.DeadlineExceeded) {
				t.Errorf("error %v is not DeadlineExceeded", de)
			}
			want := map[dwsfake.Endpoint]string{dwsfake.ListClusterDetails: "ListClusterDetails", dwsfake.DescribeKey: "DescribeKey"}[e]
			if !strings.Contains(de.Error(), want) {
				t.Errorf("error does not name the outstanding call %s: %v", want, de)
			}
			if strings.Contains(de.Error(), "ShowClusterEncryptInfo") {
				t.Errorf("error names a call that answered: %v", de)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	s := newSetup(t, true, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	de := s.factsError(t, ctx, exampleRequest)
	if !errors.Is(de, context.Canceled) {
		t.Errorf("error = %v", de)
	}
	if n := len(s.srv.Requests()); n != 0 {
		t.Errorf("%d calls made with a cancelled context", n)
	}
}

func TestInventoryFillsTheGaps(t *testing.T) {
	var got facts.Request
	var mu sync.Mutex
	inv := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		mu.Lock()
		got = r
		mu.Unlock()
		return &facts.Facts{
			Cluster: &policy.Cluster{
				GuestAgentVersion: "8.3.0.200",
				Version:           "1.0.0",            // the API knows better
				TaskStatus:        policy.String("X"), // the API knows better
				Tags:              []policy.Tag{{Key: "inventory", Value: "yes"}},
			},
			Key:    &policy.Key{KeyState: "3"},
			Tenant: &policy.Tenant{Class: "regulated"},
		}, nil
	})
	s := newSetup(t, true, inv)
	f := s.facts(t, exampleRequest)
	if f.Cluster.GuestAgentVersion != "8.3.0.200" || f.Tenant == nil || f.Tenant.Class != "regulated" {
		t.Errorf("inventory gaps not filled: %s", js(f))
	}
	if f.Cluster.Version != "8.1.3.310" || *f.Cluster.TaskStatus != "" || f.Cluster.Tags[0].Key != "env" || f.Key.KeyState != "2" {
		t.Errorf("inventory overrode the API: %s", js(f))
	}
	mu.Lock()
	if got != exampleRequest {
		t.Errorf("inventory asked about %+v", got)
	}
	mu.Unlock()

	// Where the API is silent, the inventory's value is taken.
	c := dwsfake.ExampleCluster()
	c.Omit = []string{"task_status", "tags"}
	s.srv.PutCluster(c)
	f = s.facts(t, exampleRequest)
	if f.Cluster.TaskStatus == nil || *f.Cluster.TaskStatus != "X" || len(f.Cluster.Tags) != 1 || f.Cluster.Tags[0].Key != "inventory" {
		t.Errorf("inventory did not fill omitted members: %s", js(f))
	}

	// Without KMS, the inventory's key facts are used.
	s2 := newSetup(t, false, inv)
	if f := s2.facts(t, exampleRequest); f.Key == nil || f.Key.KeyState != "3" {
		t.Errorf("key = %+v", f.Key)
	}
}

func TestInventoryErrorIsAnError(t *testing.T) {
	inv := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		return nil, errors.New("inventory offline")
	})
	s := newSetup(t, true, inv)
	de := s.factsError(t, context.Background(), exampleRequest)
	if de.Fact != dwsapi.FactInventory || !strings.Contains(de.Error(), "inventory offline") {
		t.Errorf("error = %v", de)
	}
}

func TestInventoryReturningNothing(t *testing.T) {
	inv := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) { return nil, nil })
	s := newSetup(t, true, inv)
	if f := s.facts(t, exampleRequest); f.Cluster.GuestAgentVersion != "" || f.Tenant != nil {
		t.Errorf("facts = %s", js(f))
	}
}

func TestRequestsTheSDKCannotAsk(t *testing.T) {
	s := newSetup(t, true, nil)
	for name, r := range map[string]facts.Request{
		"other project":      {ProjectID: "0123456789abcdef0123456789abcdef", ClusterID: dwsfake.ExampleClusterID},
		"empty cluster":      {ProjectID: dwsfake.ExampleProjectID},
		"path in cluster id": {ProjectID: dwsfake.ExampleProjectID, ClusterID: "../../v2/x"},
		"query in cluster":   {ProjectID: dwsfake.ExampleProjectID, ClusterID: "a?b=c"},
		"dot segment":        {ProjectID: dwsfake.ExampleProjectID, ClusterID: ".."},
	} {
		t.Run(name, func(t *testing.T) {
			if de := s.factsError(t, context.Background(), r); de.Fact != dwsapi.FactRequest {
				t.Errorf("fact = %q (%v)", de.Fact, de)
			}
		})
	}
	if n := len(s.srv.Requests()); n != 0 {
		t.Errorf("%d calls made for requests that cannot be asked", n)
	}
}

func TestErrorsCarryNoCredentials(t *testing.T) {
	echo := "request was: Authorization: SDK-HMAC-SHA256 Access=" + dwsfake.TestAK +
		", SignedHeaders=host;x-sdk-date, Signature=sig0123456789abcdef; sk=" + dwsfake.TestSK +
		`; {"X-Auth-Token": "MIIEXAuthTokenValue"}`
	cases := []struct {
		name  string
		e     dwsfake.Endpoint
		fault dwsfake.Fault
	}{
		{"error_msg echoes headers", dwsfake.ListClusterDetails, dwsfake.Fault{Status: 401, ErrorCode: "APIGW.0301", ErrorMsg: echo}},
		{"non-JSON error echoes headers", dwsfake.ShowClusterEncryptInfo, dwsfake.Fault{Status: 400, Body: []byte(echo)}},
		{"undecodable 200 echoes headers", dwsfake.ShowClusterEncryptInfo, dwsfake.Fault{Status: 200, Body: []byte(`{"master_key_id": {"x": "` + echo + `"}}`)}},
		{"KMS error echoes headers", dwsfake.DescribeKey, dwsfake.Fault{Status: 403, ErrorCode: "KMS.0306", ErrorMsg: echo}},
		{"request id echoes the AK", dwsfake.ListDisasterRecover, dwsfake.Fault{Status: 500, ErrorCode: "DWS.0000", ErrorMsg: "x",
			Header: http.Header{"X-Request-Id": {dwsfake.TestAK}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, true, nil)
			s.srv.Fail(c.e, c.fault)
			de := s.factsError(t, context.Background(), exampleRequest) // checks the message
			var se *sdkerr.ServiceResponseError
			if errors.As(de, &se) {
				noSecrets(t, se.ErrorMessage+se.ErrorCode+se.RequestId)
				if se.StatusCode != c.fault.Status {
					t.Errorf("status = %d", se.StatusCode)
				}
			}
			if !strings.Contains(de.Error(), "[REDACTED]") {
				t.Errorf("nothing redacted: %v", de)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := dwsapi.New(dwsapi.Config{}); err == nil {
		t.Error("New without a DWS client succeeded")
	}
	srv := dwsfake.New()
	defer srv.Close()
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{srv.URL}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(dwsfake.TestAK).WithSk(dwsfake.TestSK).Build()).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	_, err = dwsapi.New(dwsapi.Config{DWS: dws.NewDwsClient(hc)})
	if err == nil || !strings.Contains(err.Error(), "project") {
		t.Errorf("New with a credential without project: %v", err)
	}
}

func TestConcurrentFacts(t *testing.T) {
	s := newSetup(t, true, facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		return &facts.Facts{Cluster: &policy.Cluster{GuestAgentVersion: "8.3.0.200"}}, nil
	}))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			f, err := s.provider.Facts(context.Background(), exampleRequest)
			if err != nil {
				t.Error(err)
				return
			}
			if f.Cluster.Version != "8.1.3.310" || f.Cluster.GuestAgentVersion != "8.3.0.200" || f.Key.KeyState != "2" {
				t.Errorf("facts = %s", js(f))
			}
		})
	}
	wg.Wait()
	if h := s.srv.Hits(dwsfake.ListClusterDetails); h != 16 {
		t.Errorf("hits = %d", h)
	}
}
