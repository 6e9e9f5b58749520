package gate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/policy"
)

const (
	project = "89cd04f168b84af6be287f71730fdb4b"
	cluster = "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	body    = `{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"0f3196c8-5c23-469f-84da-92ecd2499dce","master_key_name":"KMS-1abd-1016"}}`
)

var engine = sync.OnceValues(func() (*policy.Engine, error) {
	p, err := policy.Default()
	if err != nil {
		return nil, err
	}
	return policy.New(context.Background(), p)
})

func newEngine(t testing.TB) *policy.Engine {
	e, err := engine()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// exampleFacts are the API page's example cluster and key, all facts known and good.
func exampleFacts(agent string) facts.Provider {
	return facts.Func(func(_ context.Context, r facts.Request) (*facts.Facts, error) {
		return &facts.Facts{
			Cluster: &policy.Cluster{Version: "8.1.3.310", GuestAgentVersion: agent, Status: "AVAILABLE",
				TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false)},
			Key:    &policy.Key{KeyID: r.KeyID, KeyState: "2"},
			Tenant: &policy.Tenant{Class: "default"},
		}, nil
	})
}

// upstream is a server that records what reaches it.
type upstream struct {
	*httptest.Server
	hits   atomic.Int32
	mu     sync.Mutex
	bodies [][]byte
	header http.Header
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, b)
		u.header = r.Header.Clone()
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"job_id": "2c9080d08cc99d28018ccd139e942498"}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func post(t *testing.T, g *gate.Gate, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	req.Header.Set("X-Sdk-Date", "20261127T090000Z")
	req.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=AKSECRETAK, SignedHeaders=content-type;host;x-sdk-date, Signature=deadbeef")
	resp, err := (&http.Client{Transport: g}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func TestAllowedCallIsForwardedUntouched(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	resp, out := post(t, g, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", body)
	if resp.StatusCode != 200 || !strings.Contains(string(out), "job_id") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if up.hits.Load() != 1 || !bytes.Equal(up.bodies[0], []byte(body)) {
		t.Fatalf("upstream saw %d calls, body %q", up.hits.Load(), up.bodies)
	}
	if up.header.Get("Authorization") == "" || up.header.Get("X-Sdk-Date") != "20261127T090000Z" {
		t.Errorf("headers changed on the way: %v", up.header)
	}
}

func TestDeniedCallNeverReachesTheServer(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.199")))
	resp, out := post(t, g, up.URL+"/some/gateway/prefix/v2/"+project+"/clusters/"+cluster+"/encrypt", body)
	if up.hits.Load() != 0 {
		t.Fatal("a refused call reached the server")
	}
	var e struct {
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
	}
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if resp.StatusCode != 409 || e.ErrorCode != "PRECHECK-VER-002" || !strings.Contains(e.ErrorMsg, "8.3.0.199 is below") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	if resp.Header.Get("X-Request-Id") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", resp.Header)
	}
}

func TestOtherCallsPassThrough(t *testing.T) {
	up := newUpstream(t)
	checked := 0
	g := gate.New(nil, newEngine(t), gate.WithObserver(func(gate.Event) { checked++ }))
	for _, path := range []string{"/v1.0/" + project + "/clusters/" + cluster, "/v2/" + project + "/clusters/" + cluster + "/encrypt-info", "/v2/" + project + "/clusters"} {
		post(t, g, up.URL+path, "{}")
	}
	req, _ := http.NewRequest(http.MethodGet, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", nil)
	if _, err := (&http.Client{Transport: g}).Do(req); err != nil {
		t.Fatal(err)
	}
	if up.hits.Load() != 4 || checked != 0 {
		t.Errorf("%d of 4 reached the server, %d were checked", up.hits.Load(), checked)
	}
}

func TestFactsFailureFailsClosed(t *testing.T) {
	up := newUpstream(t)
	broken := facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		return nil, errors.New("ListClusterDetails: 500")
	})
	var events []gate.Event
	g := gate.New(nil, newEngine(t), gate.WithFacts(broken), gate.WithObserver(func(e gate.Event) { events = append(events, e) }))
	resp, out := post(t, g, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", body)
	if up.hits.Load() != 0 || resp.StatusCode != 503 || !strings.Contains(string(out), gate.CodeFactsFailed) || !strings.Contains(string(out), "ListClusterDetails: 500") {
		t.Fatalf("%d hits; %d %s", up.hits.Load(), resp.StatusCode, out)
	}
	if len(events) != 1 || events[0].Forwarded || events[0].Decision != nil || !strings.Contains(events[0].Failure, "gathering facts") {
		t.Errorf("events %+v", events)
	}

	open := gate.New(nil, newEngine(t), gate.WithFacts(broken), gate.WithFailOpen())
	if resp, _ := post(t, open, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", body); resp.StatusCode != 200 || up.hits.Load() != 1 {
		t.Errorf("fail-open: %d, %d hits", resp.StatusCode, up.hits.Load())
	}
}

func TestUnreadableOrOddBodies(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	url := up.URL + "/v2/" + project + "/clusters/" + cluster + "/encrypt"
	resp, out := post(t, g, url, strings.Repeat("x", 1<<20))
	if resp.StatusCode != 400 || !strings.Contains(string(out), gate.CodeBodyRejected) {
		t.Errorf("huge body: %d %s", resp.StatusCode, out)
	}
	resp, out = post(t, g, url, "crypt_algorithm=SMcompatible")
	if resp.StatusCode != 400 || !strings.Contains(string(out), "PRECHECK-REQ-001") || !strings.Contains(string(out), "must be a JSON object, got crypt_algorithm=SMcompatible") {
		t.Errorf("form body: %d %s", resp.StatusCode, out)
	}
	resp, out = post(t, g, url, "")
	if resp.StatusCode != 400 || !strings.Contains(string(out), "the request has no body") {
		t.Errorf("no body: %d %s", resp.StatusCode, out)
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
