package gate_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
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
	calls  []string // "METHOD path", "+close" when the client asked to close the connection after it
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, b)
		u.header = r.Header.Clone()
		call := r.Method + " " + r.URL.EscapedPath()
		if r.Close {
			call += " +close"
		}
		u.calls = append(u.calls, call)
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

// The facts are asked for the key the body names as the policy reads it: escapes decoded, nothing for a
// key ID that is not a string or a body without one.
func TestFactsAskedForTheKeyTheBodyNames(t *testing.T) {
	t.Parallel()
	up, eng := newUpstream(t), newEngine(t)
	for _, c := range []struct{ body, key string }{
		{body, "0f3196c8-5c23-469f-84da-92ecd2499dce"},
		{`{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"\u0030f3196c8-5c23-469f-84da-92ecd2499dce"}}`, "0f3196c8-5c23-469f-84da-92ecd2499dce"},
		{`{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":7}}`, ""},
		{`{"encrypt":{"crypt_algorithm":"SMcompatible"},"master_key_id":"0f3196c8-5c23-469f-84da-92ecd2499dce"}`, ""},
		{`{"encrypt":[{"master_key_id":"0f3196c8-5c23-469f-84da-92ecd2499dce"}]}`, ""},
		{``, ""},
	} {
		var asked []string // the provider is called on the caller's goroutine
		provider := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
			asked = append(asked, r.KeyID)
			return exampleFacts("8.3.0.200").Facts(ctx, r)
		})
		g := gate.New(nil, eng, gate.WithFacts(provider))
		post(t, g, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", c.body)
		if len(asked) != 1 || asked[0] != c.key {
			t.Errorf("body %s: the facts were asked for the keys %q, want [%q]", c.body, asked, c.key)
		}
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
	client := &http.Client{Transport: g}
	clusterPath := "/v1.0/" + project + "/clusters/" + cluster
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, clusterPath, ""}, // ListClusterDetails
		{http.MethodGet, "/v1/" + project + "/clusters/" + cluster + "/encrypt-info", ""},
		{http.MethodPost, "/v2/" + project + "/clusters/" + cluster + "/encrypt-info", "{}"},
		{http.MethodPost, "/v2/" + project + "/clusters", "{}"},
		{http.MethodDelete, clusterPath, `{"keep_last_manual_snapshot": 0}`}, // DeleteCluster has a body
		{http.MethodHead, clusterPath, ""},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, up.URL+c.path, body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	want := []string{
		"GET " + clusterPath,
		"GET /v1/" + project + "/clusters/" + cluster + "/encrypt-info",
		"POST /v2/" + project + "/clusters/" + cluster + "/encrypt-info +close",
		"POST /v2/" + project + "/clusters +close",
		"DELETE " + clusterPath + " +close",
		"HEAD " + clusterPath,
	}
	if !slices.Equal(up.calls, want) || checked != 0 {
		t.Errorf("the server saw %q, want %q; %d were checked", up.calls, want, checked)
	}
}

// TestGuardedPathOtherMethods: the encrypt call's path takes POST alone; anything else may still reach the
// call through a server or framework that maps methods, so it is refused, never passed through.
func TestGuardedPathOtherMethods(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions, "post", "Post", "PROPFIND"} {
		t.Run(method, func(t *testing.T) {
			req, _ := http.NewRequest(method, up.URL+"/gw/V2/"+project+"/clusters/"+cluster+"/Encrypt.json", strings.NewReader(body))
			resp, out := send(t, g, req)
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
				t.Errorf("%d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
			}
			if method != http.MethodHead && apiError(t, out).ErrorCode != gate.CodeMethodRefused {
				t.Errorf("%s", out)
			}
		})
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

// TestGuardedPathVariants: every form of the path a server would route to the call is checked; a form some
// servers read as the call and others as another call, or with other IDs, is refused.
func TestGuardedPathVariants(t *testing.T) {
	up := newUpstream(t)
	var events []gate.Event
	eng := newEngine(t)
	g := gate.New(nil, eng, gate.WithFacts(exampleFacts("8.3.0.200")), gate.WithObserver(func(e gate.Event) { events = append(events, e) }))
	base := "/v2/" + project + "/clusters/" + cluster
	for _, path := range []string{
		"/gateway/prefix" + base + "/encrypt", base + "/encrypt/", "/v2//" + project + "/clusters/" + cluster + "//encrypt",
		"/V2/" + project + "/CLUSTERS/" + cluster + "/ENCRYPT", base + "/encrypt.json", base + "/encrypt;jsessionid=1",
		"/v2/" + project + "/clusters/" + cluster + ";jsessionid=1/encrypt", "/x/../v2/" + project + "/clusters/" + cluster + "/encrypt",
	} {
		events = nil
		resp, out := post(t, g, up.URL+path, body)
		if resp.StatusCode != 200 || len(events) != 1 || !events[0].Forwarded || events[0].ClusterID != cluster || events[0].ProjectID != project ||
			events[0].PolicyRevision != eng.Policy().Revision() {
			t.Errorf("%s: %d %s; events %+v", path, resp.StatusCode, out, events)
		}
	}
	hits := up.hits.Load()
	for _, path := range []string{
		"/v2/" + project + "/clusters/x%2F" + cluster + "/encrypt", "/v2/" + project + "/clusters/other/../" + cluster + "/encrypt",
		"/v2/" + project + "/clusters/other/%2e%2e/" + cluster + "/encrypt", base + "/./encrypt", base + "/encrypt/x/..",
		"/v2/" + project + "/clusters/other/..;/" + cluster + "/encrypt", base + "%2Fencrypt", base + "/encrypt%2500",
	} {
		events = nil
		resp, out := post(t, g, up.URL+path, body)
		if e := apiError(t, out); resp.StatusCode != 400 || e.ErrorCode != gate.CodeRouteRefused || !strings.Contains(e.ErrorMsg, "cannot tell which call") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, out)
		}
		if len(events) != 1 || !events[0].Refused || events[0].Decision != nil || events[0].PolicyRevision != "" { // the caller's doing, not precheck's failure
			t.Errorf("%s: events %+v", path, events)
		}
	}
	if up.hits.Load() != hits {
		t.Errorf("%d refused calls reached the server", up.hits.Load()-hits)
	}
}

// TestOverrideAndUpgradeHeadersRefused: a front end may route a request by these headers instead of its request line,
// so that a request the gate passes through becomes the encrypt call behind it.
func TestOverrideAndUpgradeHeadersRefused(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	for _, h := range []struct{ name, value string }{
		{"X-HTTP-Method-Override", "POST"}, {"X-HTTP-Method", "POST"}, {"X-Method-Override", "POST"},
		{"X-Original-URL", "/v2/" + project + "/clusters/" + cluster + "/encrypt"}, {"X-Rewrite-URL", "/v2/" + project + "/clusters/" + cluster + "/encrypt"},
		{"x-http-method-override", "POST"}, {"X_Original_URL", "/v2/" + project + "/clusters/" + cluster + "/encrypt"},
		// a protocol upgrade hands the caller the raw connection after a 101: nothing on it is read
		{"Upgrade", "h2c"}, {"upgrade", "websocket"}, {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}, {"Connection", "keep-alive, Upgrade"},
	} {
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1.0/" + project + "/clusters/" + cluster, ""},
			{http.MethodPost, "/v2/" + project + "/clusters/" + cluster + "/encrypt", body},
		} {
			req, _ := http.NewRequest(c.method, up.URL+c.path, strings.NewReader(c.body))
			req.Header[h.name] = []string{h.value} // as given: a transport writes the key as it is
			resp, out := send(t, g, req)
			if e := apiError(t, out); resp.StatusCode != 400 || e.ErrorCode != gate.CodeRouteRefused {
				t.Errorf("%s on %s: %d %s", h.name, c.method, resp.StatusCode, out)
			}
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

// TestBodyOnBodylessMethodRefused: a server that expects no body on these methods may read one as the next
// request on the connection.
func TestBodyOnBodylessMethodRefused(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t))
	smuggled := "POST /v2/" + project + "/clusters/" + cluster + "/encrypt HTTP/1.1\r\nHost: x\r\n\r\n" + body
	// "" is GET to net/http's transport (NewRequest makes it "GET"; a caller can set it after).
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, "get", ""} {
		for name, r := range map[string]io.Reader{"known length": strings.NewReader(smuggled), "unknown length": io.MultiReader(strings.NewReader(smuggled))} {
			req, _ := http.NewRequest(http.MethodGet, up.URL+"/v1.0/"+project+"/clusters/"+cluster, r)
			req.Method = method
			resp, out := send(t, g, req)
			if resp.StatusCode != 400 || (method != http.MethodHead && apiError(t, out).ErrorCode != gate.CodeUnexpectedBody) {
				t.Errorf("%s, %s: %d %s", method, name, resp.StatusCode, out)
			}
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
	// An empty reader of unknown length is no body: net/http sends none.
	req, _ := http.NewRequest(http.MethodGet, up.URL+"/v1.0/"+project+"/clusters/"+cluster, io.MultiReader())
	if resp, out := send(t, g, req); resp.StatusCode != 200 {
		t.Errorf("GET with an empty body: %d %s", resp.StatusCode, out)
	}
}

// TestRequestLineSplitRefused: net/http writes a space of an Opaque or a raw query on the request line as
// it is, and servers that split the line at spaces route what comes before it.
func TestRequestLineSplitRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.199")))
	path := "/v2/" + project + "/clusters/" + cluster + "/encrypt"
	for _, u := range []url.URL{{Opaque: path + " x"}, {Opaque: "/v1.0/" + project + " " + path}, {Path: "/v1.0/" + project, RawQuery: "a " + path}} {
		req, _ := http.NewRequest(http.MethodPost, up.URL, strings.NewReader(body))
		req.URL.Opaque, req.URL.Path, req.URL.RawQuery = u.Opaque, cmp.Or(u.Path, "/"), u.RawQuery
		resp, out := send(t, g, req)
		if e := apiError(t, out); resp.StatusCode != 400 || e.ErrorCode != gate.CodeRouteRefused {
			t.Errorf("%q: %d %s", req.URL.RequestURI(), resp.StatusCode, out)
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

// TestConnectRefused: CONNECT makes the connection a tunnel, whatever the path, and a body sent with it
// goes out unframed.
func TestConnectRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	for _, method := range []string{http.MethodConnect, "connect"} {
		for _, c := range []struct{ path, body string }{
			{"/v1.0/" + project + "/clusters/" + cluster, ""},
			{"/v1.0/" + project + "/clusters/" + cluster, "POST /v2/" + project + "/clusters/" + cluster + "/encrypt HTTP/1.1\r\nHost: x\r\n\r\n" + body},
			{"/v2/" + project + "/clusters/" + cluster + "/encrypt", body},
		} {
			req, _ := http.NewRequest(method, up.URL+c.path, strings.NewReader(c.body))
			resp, out := send(t, g, req)
			if e := apiError(t, out); resp.StatusCode != 400 || e.ErrorCode != gate.CodeRouteRefused {
				t.Errorf("%s %s: %d %s", method, c.path, resp.StatusCode, out)
			}
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

// TestPassedThroughBodyClosesTheConnection: a passed-through request with a body asks the server to close
// the connection after it, and only that: the caller's own connection headers do not go with it.
func TestPassedThroughBodyClosesTheConnection(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t))
	req, _ := http.NewRequest(http.MethodPost, up.URL+"/v2/"+project+"/clusters", strings.NewReader(`{"cluster": {}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header["Connection"] = []string{"keep-alive"}
	req.Header["connection"] = []string{"Content-Length"}
	req.Header["Keep-Alive"] = []string{"timeout=5"}
	req.Header["Proxy_Connection"] = []string{"keep-alive"}
	req.Header.Set("X-Kept", "1")
	if resp, out := send(t, g, req); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	var seen []string
	for k, vs := range up.header {
		for _, v := range vs {
			seen = append(seen, k+": "+v)
		}
	}
	slices.Sort(seen)
	for _, line := range seen {
		if n := strings.ToLower(line); strings.HasPrefix(n, "keep-alive") || strings.HasPrefix(n, "proxy") || strings.HasPrefix(n, "connection") && n != "connection: close" {
			t.Errorf("the server saw %q; the headers it got: %q", line, seen)
		}
	}
	if up.header.Get("X-Kept") != "1" || req.Header.Get("Connection") != "keep-alive" {
		t.Errorf("other headers changed, or the caller's request: %q, %v", seen, req.Header)
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
	if len(events) != 1 || events[0].Forwarded || events[0].Decision != nil || events[0].Refused || !strings.Contains(events[0].Failure, "gathering facts") {
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
	if resp.StatusCode != 400 || !strings.Contains(string(out), gate.CodeBodyRejected) || !strings.Contains(string(out), "over the limit") {
		t.Errorf("huge body: %d %s", resp.StatusCode, out)
	}
	// Changed: a body that is not JSON no longer goes to the policy as a string; the gate refuses it.
	resp, out = post(t, g, url, "crypt_algorithm=SMcompatible")
	if resp.StatusCode != 400 || !strings.Contains(string(out), gate.CodeBodyRejected) || !strings.Contains(string(out), "not JSON") {
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

// TestBodyReadOneWay: the gate decides only on a body every server reads as it does; anything else is
// refused, by name, before the facts provider (or the fail-open path) ever sees it.
func TestBodyReadOneWay(t *testing.T) {
	up := newUpstream(t)
	var asked atomic.Int32
	counting := facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		asked.Add(1)
		return exampleFacts("8.3.0.200").Facts(ctx, r)
	})
	url := up.URL + "/v2/" + project + "/clusters/" + cluster + "/encrypt"
	const key = `"master_key_id":"0f3196c8-5c23-469f-84da-92ecd2499dce"`
	for _, tt := range []struct {
		name, body string
		header     map[string]string
		says       string // in error_msg; "" when the call is forwarded
	}{
		{name: "the SDK's", body: body, header: map[string]string{"Content-Type": "application/json;charset=UTF-8"}},
		{name: "no Content-Type", body: body, header: map[string]string{"Content-Type": ""}},
		{name: "media type in capitals", body: body, header: map[string]string{"Content-Type": "APPLICATION/JSON; Charset=utf-8"}},
		{name: "identity encoding", body: body, header: map[string]string{"Content-Encoding": "identity"}},
		{name: "form", body: body, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, says: `Content-Type is "application/x-www-form-urlencoded"`},
		{name: "text", body: body, header: map[string]string{"Content-Type": "text/plain"}, says: `not application/json`},
		{name: "latin1", body: body, header: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}, says: `charset "iso-8859-1"`},
		{name: "utf-16", body: body, header: map[string]string{"Content-Type": "application/json; charset=utf-16"}, says: `charset "utf-16"`},
		{name: "malformed Content-Type", body: body, header: map[string]string{"Content-Type": "application/json; charset"}, says: "cannot be parsed"},
		{name: "gzip", body: body, header: map[string]string{"Content-Encoding": "gzip"}, says: `Content-Encoding is "gzip"`},
		{name: "identity then gzip", body: body, header: map[string]string{"Content-Encoding": "identity, gzip"}, says: "Content-Encoding"},
		{name: "not UTF-8", body: `{"encrypt":{"crypt_algorithm":"generalCipher",` + key + `,"master_key_name":"KMS-\xff"}}`, says: "not valid UTF-8"},
		{name: "two JSON values", body: body + body, says: "not JSON"},
		{name: "a member twice", body: `{"encrypt":{"crypt_algorithm":"SMcompatible","crypt_algorithm":"generalCipher",` + key + `}}`, says: "request.body.encrypt"},
		{name: "a member twice by case", body: `{"encrypt":{"crypt_algorithm":"generalCipher","Crypt_Algorithm":"AES",` + key + `}}`, says: "request.body.encrypt"},
		{name: "a case variant of encrypt", body: `{"Encrypt":{"crypt_algorithm":"generalCipher",` + key + `}}`, says: "request.body"},
		{name: "a lone surrogate", body: `{"encrypt":{"crypt_algorithm":"generalCipher",` + key + `,"master_key_name":"\ud800"}}`, says: "request.body.encrypt.master_key_name"},
		{name: "a number out of range", body: `{"encrypt":{"crypt_algorithm":"generalCipher",` + key + `},"x":1e400}`, says: "request.body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			hits := up.hits.Load()
			for _, g := range []*gate.Gate{
				gate.New(nil, newEngine(t), gate.WithFacts(counting)),
				gate.New(nil, newEngine(t), gate.WithFacts(counting), gate.WithFailOpen()),
			} {
				b := strings.ReplaceAll(tt.body, `\xff`, "\xff")
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(b))
				for k, v := range tt.header {
					if v == "" {
						req.Header.Del(k)
					} else {
						req.Header.Set(k, v)
					}
				}
				resp, out := send(t, g, req)
				if tt.says == "" {
					if resp.StatusCode != 200 {
						t.Errorf("%d %s, want forwarded", resp.StatusCode, out)
					}
					continue
				}
				if e := apiError(t, out); resp.StatusCode != 400 || e.ErrorCode != gate.CodeBodyRejected || !strings.Contains(e.ErrorMsg, tt.says) {
					t.Errorf("%d %s, want 400 %s saying %q", resp.StatusCode, out, gate.CodeBodyRejected, tt.says)
				}
			}
			if tt.says != "" && (asked.Load() != 0 || up.hits.Load() != hits) {
				t.Errorf("a refused body reached the facts provider %d times, the server %d times", asked.Load(), up.hits.Load()-hits)
			}
		})
	}
}

// TestBodyLengthMustMatch: a body longer or shorter than its declared length is read one way by the gate and
// another by a server that trusts the length.
func TestBodyLengthMustMatch(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	url := up.URL + "/v2/" + project + "/clusters/" + cluster + "/encrypt"
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.ContentLength = 10
	if resp, out := send(t, g, req); resp.StatusCode != 400 || !strings.Contains(string(out), "not the 10 its length says") {
		t.Errorf("ContentLength: %d %s", resp.StatusCode, out)
	}
	req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Length", "10")
	if resp, out := send(t, g, req); resp.StatusCode != 400 || !strings.Contains(string(out), "Content-Length header") {
		t.Errorf("Content-Length header: %d %s", resp.StatusCode, out)
	}
	req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Transfer-Encoding", "chunked")
	if resp, out := send(t, g, req); resp.StatusCode != 400 || !strings.Contains(string(out), "Transfer-Encoding") {
		t.Errorf("Transfer-Encoding header: %d %s", resp.StatusCode, out)
	}
	if up.hits.Load() != 0 {
		t.Errorf("%d refused calls reached the server", up.hits.Load())
	}
}

// TestAllowedCallIsFramedByItsLength: the allowed call goes on with exactly the body the gate read, framed
// by its length, so nothing the client sent after it can reach the server; it keeps its connection.
func TestAllowedCallIsFramedByItsLength(t *testing.T) {
	up := newUpstream(t)
	g := gate.New(nil, newEngine(t), gate.WithFacts(exampleFacts("8.3.0.200")))
	req, err := http.NewRequest(http.MethodPost, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt",
		io.NopCloser(strings.NewReader(body))) // a reader of unknown length: the gate frames what it read
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	resp, err := g.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"POST /v2/" + project + "/clusters/" + cluster + "/encrypt"}; resp.StatusCode != 200 || !slices.Equal(up.calls, want) {
		t.Errorf("%d: the server saw %q, want %q", resp.StatusCode, up.calls, want)
	}
	if got := up.header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
		t.Errorf("forwarded with Content-Length %q, want %d", got, len(body))
	}
}

// TestFailOpenCoversOnlyTheFacts: without its facts, the gate still refuses whatever the request itself
// gets wrong; and an evaluation that fails is never a reason to let the call through.
func TestFailOpenCoversOnlyTheFacts(t *testing.T) {
	up := newUpstream(t)
	broken := facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) { return nil, errors.New("inventory down") })
	var events []gate.Event
	g := gate.New(nil, newEngine(t), gate.WithFacts(broken), gate.WithFailOpen(), gate.WithObserver(func(e gate.Event) { events = append(events, e) }))
	url := up.URL + "/v2/" + project + "/clusters/" + cluster + "/encrypt"

	resp, out := post(t, g, url, body)
	if resp.StatusCode != 200 || up.hits.Load() != 1 || len(events) != 1 || !events[0].Forwarded || events[0].Decision == nil ||
		!strings.Contains(events[0].Failure, "inventory down") {
		t.Fatalf("a sound request without facts: %d %s; events %+v", resp.StatusCode, out, events)
	}
	for _, v := range events[0].Decision.Violations {
		if !strings.HasPrefix(v.Field, "cluster.") && !strings.HasPrefix(v.Field, "key.") && !strings.HasPrefix(v.Field, "tenant.") {
			t.Errorf("forwarded with a violation on %s", v.Field)
		}
	}
	for _, tt := range []struct{ name, path, body, code string }{
		{"unknown algorithm", "/v2/" + project + "/clusters/" + cluster + "/encrypt", strings.Replace(body, "generalCipher", "AES", 1), "PRECHECK-REQ-"},
		{"malformed cluster id", "/v2/" + project + "/clusters/not-a-uuid/encrypt", body, "PRECHECK-REQ-"},
		{"no key", "/v2/" + project + "/clusters/" + cluster + "/encrypt", `{"encrypt":{"crypt_algorithm":"generalCipher"}}`, "PRECHECK-REQ-"},
		{"no body", "/v2/" + project + "/clusters/" + cluster + "/encrypt", "", "PRECHECK-REQ-"},
	} {
		resp, out := post(t, g, up.URL+tt.path, tt.body)
		if e := apiError(t, out); resp.StatusCode/100 != 4 || !strings.HasPrefix(e.ErrorCode, tt.code) {
			t.Errorf("%s: %d %s", tt.name, resp.StatusCode, out)
		}
	}
	if up.hits.Load() != 1 {
		t.Errorf("%d refused calls reached the server", up.hits.Load()-1)
	}

	// A cluster or key that does not exist makes the facts fail too, but the caller chose it: fail-open does
	// not cover it.
	notFound := facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		return nil, fmt.Errorf("DescribeKey: %w", facts.ErrNotFound)
	})
	g = gate.New(nil, newEngine(t), gate.WithFacts(notFound), gate.WithFailOpen())
	if resp, out := post(t, g, url, body); resp.StatusCode != 503 || apiError(t, out).ErrorCode != gate.CodeFactsFailed {
		t.Errorf("a key that does not exist, fail-open: %d %s", resp.StatusCode, out)
	}
	if up.hits.Load() != 1 {
		t.Errorf("a call naming a key that does not exist reached the server")
	}

	for _, open := range []bool{false, true} {
		opts := []gate.Option{gate.WithFacts(exampleFacts("8.3.0.200"))}
		if open {
			opts = append(opts, gate.WithFailOpen())
		}
		g := gate.New(nil, failingChecker{}, opts...)
		resp, out := post(t, g, url, body)
		if e := apiError(t, out); resp.StatusCode != 503 || e.ErrorCode != gate.CodeCheckFailed || !strings.Contains(e.ErrorMsg, "evaluating the policy: policy broken") {
			t.Errorf("evaluation failure (fail-open %v): %d %s", open, resp.StatusCode, out)
		}
		// Without facts, fail-open evaluates the request alone, and that evaluation fails too.
		want := gate.CodeFactsFailed
		if open {
			want = gate.CodeCheckFailed
		}
		g = gate.New(nil, failingChecker{}, append(opts, gate.WithFacts(broken))...)
		if resp, out := post(t, g, url, body); resp.StatusCode != 503 || apiError(t, out).ErrorCode != want {
			t.Errorf("evaluation failure after facts failure (fail-open %v): %d %s, want %s", open, resp.StatusCode, out, want)
		}
	}
	if up.hits.Load() != 1 {
		t.Errorf("%d calls reached the server although the policy could not be evaluated", up.hits.Load()-1)
	}
}

type failingChecker struct{}

func (failingChecker) CheckDocument(context.Context, *policy.Document) (*policy.Decision, error) {
	return nil, errors.New("policy broken")
}

// TestNothingSecretEchoed: a facts provider (or an upstream) whose error quotes the caller's credentials gets
// them into neither the log, the events, the answer, nor the error the caller gets back.
func TestNothingSecretEchoed(t *testing.T) {
	const token = "MIIDkgYJKoZIhvcNAQcCoIIDgzCCA38CAQExDTALBglghkgBZQMEAgEwgXsGCSqGSIb3DQEHAaBuBGx7InRva2VuIjp7"
	const signature = "6ba3bbb8e61b3aa3b6a4e6ca4e5b1f1d4c5b2b8c1f4e2a3d9c7e6f5a4b3c2d1e"
	echoing := facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		return nil, errors.New("IAM said: token " + token + " rejected; expected request signature " + signature)
	})
	up := newUpstream(t)
	var logs bytes.Buffer
	var events []string
	opts := []gate.Option{gate.WithFacts(echoing), gate.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
		gate.WithObserver(func(e gate.Event) { events = append(events, string(mustJSON(t, e))) })}
	var answers []string
	for _, g := range []*gate.Gate{gate.New(nil, newEngine(t), opts...), gate.New(nil, newEngine(t), append(opts, gate.WithFailOpen())...)} {
		req, _ := http.NewRequest(http.MethodPost, up.URL+"/v2/"+project+"/clusters/"+cluster+"/encrypt", strings.NewReader(body))
		req.Header.Set("X-Auth-Token", token)
		_, out := send(t, g, req)
		answers = append(answers, string(out))
	}
	// The upstream's transport fails with a message that quotes them too.
	g := gate.New(failingTransport{err: errors.New("malformed HTTP response \"" + token + " " + signature + "\"")}, newEngine(t), opts...)
	req, _ := http.NewRequest(http.MethodGet, up.URL+"/v1.0/"+project+"/clusters/"+cluster, nil)
	req.Header.Set("X-Auth-Token", token)
	_, err := g.RoundTrip(req)
	if err == nil {
		t.Fatal("the transport's error was lost")
	}
	everything := logs.String() + strings.Join(events, "\n") + strings.Join(answers, "\n") + err.Error()
	for _, secret := range []string{token, signature, token[:40]} {
		if strings.Contains(everything, secret) {
			t.Errorf("%q leaked:\n%s", secret, everything)
		}
	}
	if !strings.Contains(answers[0], "IAM said") || !strings.Contains(logs.String(), "IAM said") || !strings.Contains(err.Error(), "malformed HTTP response") {
		t.Errorf("the redacted texts no longer say what happened:\n%s", everything)
	}
	if !errors.Is(err, errTransport) {
		t.Errorf("the transport's error is no longer its cause: %v", err)
	}
}

var errTransport = errors.New("transport failed")

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("%w: %w", errTransport, f.err)
}

// send sends req through g directly (no http.Client, which would refuse some requests itself).
func send(t *testing.T, g *gate.Gate, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := g.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

type apiErr struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

func apiError(t *testing.T, out []byte) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(out, &e); err != nil {
		t.Errorf("not the API's error shape: %s: %v", out, err)
	}
	return e
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
