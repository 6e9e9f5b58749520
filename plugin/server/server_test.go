package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
	"github.com/open-policy-agent/opa/v1/bundle"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// running is a server started on a loopback port.
type running struct {
	*server.Server
	URL  string
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Server: s, URL: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, ln, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// defaultSource serves the embedded default policy, read once per test binary: a Policy is immutable, so
// the servers of parallel tests share it (the bypass tests share theirs too), and each still compiles it
// with its own backend.
func defaultSource() server.Source {
	return &server.Files{Read: embeddedDefault, Name: "embedded default"}
}

var embeddedDefault = sync.OnceValues(policy.Default)

func regoBackend() policy.Backend { return policy.Rego() }

func example(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/inputs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postJSON(t testing.TB, url string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

func TestDecisionAPI(t *testing.T) {
	t.Parallel()
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, DecisionLog: &log})

	status, body, header := postJSON(t, s.URL+"/v1/precheck", example(t, "denied-guest-agent-too-old.json"))
	var d policy.Decision
	if status != 200 || json.Unmarshal(body, &d) != nil || d.Allowed || d.Violations[0].Code != "PRECHECK-VER-002" || header.Get("X-Decision-Id") == "" {
		t.Fatalf("%d %s", status, body)
	}
	status, body, _ = postJSON(t, s.URL+"/v1/precheck", example(t, "allowed-api-example.json"))
	if status != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) {
		t.Fatalf("%d %s", status, body)
	}

	for _, tt := range []struct {
		name   string
		body   []byte
		status int
		says   string
	}{
		{"malformed", []byte("{\n \"request\": {,}\n}"), 400, "line 2, column 14: malformed JSON"},
		{"not an object", []byte(`[1]`), 400, "must be a JSON object"},
		{"too deep", []byte(`{"request": {"body":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`), 400, "nested deeper than the limit"},
		{"oversized", []byte(`{"x": "` + strings.Repeat("a", 2<<20) + `"}`), 413, "over the limit of 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := postJSON(t, s.URL+"/v1/precheck", tt.body)
			var e struct{ ErrorCode, ErrorMsg string }
			json.Unmarshal(body, &struct {
				ErrorCode *string `json:"error_code"`
				ErrorMsg  *string `json:"error_msg"`
			}{&e.ErrorCode, &e.ErrorMsg})
			if status != tt.status || !strings.HasPrefix(e.ErrorCode, "PRECHECK-SERVE-") || !strings.Contains(e.ErrorMsg, tt.says) {
				t.Errorf("%d %s", status, body)
			}
		})
	}

	resp, err := http.Get(s.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	status, body = get(t, s.URL+"/readyz")
	if status != 200 || !bytes.Contains(body, []byte(`"ready":true`)) || !bytes.Contains(body, []byte(`"engine":"rego"`)) {
		t.Errorf("readyz %d %s", status, body)
	}

	// The decision log: one line per decision, no input, no secrets.
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines:\n%s", len(lines), log.String())
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	doc := example(t, "denied-guest-agent-too-old.json")
	sum := sha256.Sum256(doc)
	for key, want := range map[string]any{"result": "denied", "endpoint": "api", "engine": "rego", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"input_digest": "sha256:" + hex.EncodeToString(sum[:])} {
		if entry[key] != want {
			t.Errorf("log %s = %v, want %v", key, entry[key], want)
		}
	}
	if v, _ := entry["violations"].([]any); len(v) != 1 || v[0] != "PRECHECK-VER-002" || entry["decision_id"] == "" || entry["policy_revision"] == "" {
		t.Errorf("log entry %v", entry)
	}
	if strings.Contains(log.String(), "8.3.0.199") || strings.Contains(log.String(), "0f3196c8") {
		t.Error("the decision log holds input values")
	}
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric scrapes /metrics, parses it with Prometheus' own parser, and returns the value of the sample
// whose labels include want.
func metric(t *testing.T, base, name string, want map[string]string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	f, ok := families[name]
	if !ok {
		return 0
	}
	total := 0.0
	for _, m := range f.Metric {
		if matches(m, want) {
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

func matches(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.Label {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend})
	postJSON(t, s.URL+"/v1/precheck", example(t, "denied-guest-agent-too-old.json"))
	postJSON(t, s.URL+"/v1/precheck", example(t, "denied-regulated-general-cipher.json"))
	postJSON(t, s.URL+"/v1/precheck", example(t, "allowed-api-example.json"))
	postJSON(t, s.URL+"/v1/precheck", []byte("{"))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"precheck_decisions_total", map[string]string{"result": "denied", "endpoint": "api", "engine": "rego"}, 2},
		{"precheck_decisions_total", map[string]string{"result": "allowed"}, 1},
		{"precheck_violations_total", map[string]string{"code": "PRECHECK-VER-002"}, 1},
		{"precheck_violations_total", map[string]string{"code": "PRECHECK-TEN-001"}, 1},
		{"precheck_decision_duration_seconds", map[string]string{"endpoint": "api"}, 3},
		{"precheck_http_rejected_total", map[string]string{"reason": "malformed"}, 1},
		{"precheck_policy_reloads_total", map[string]string{"result": "success"}, 1},
	} {
		if got := metric(t, s.URL, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestGateProxy(t *testing.T) {
	t.Parallel()
	upstream := dwsfake.New()
	defer upstream.Close()
	upstream.SeedExample()
	inv, err := facts.ParseJSON([]byte(`[{"project_id": "` + dwsfake.ExampleProjectID + `", "cluster_id": "` + dwsfake.ExampleClusterID + `",
		"cluster": {"version": "8.1.3.310", "guest_agent_version": "8.3.0.200", "status": "AVAILABLE", "task_status": "", "encrypted": false, "dr_relationship": false},
		"key": {"key_id": "` + dwsfake.ExampleKeyID + `", "key_state": "2"}, "tenant": {"class": "regulated"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(upstream.URL)
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u, Facts: inv, DecisionLog: &log})

	// The official SDK, pointed at the proxy instead of the API.
	proxyAsAPI := &dwsfake.Server{URL: s.URL}
	client, err := proxyAsAPI.DWSClient(dwsfake.ExampleProjectID, nil)
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(alg string) (*model.EncryptClusterResponse, error) {
		return client.EncryptCluster(&model.EncryptClusterRequest{ClusterId: dwsfake.ExampleClusterID,
			Body: &model.EncryptClusterReq{Encrypt: &model.EncryptCluster{MasterKeyId: dwsfake.ExampleKeyID, CryptAlgorithm: alg}}})
	}
	_, err = encrypt("generalCipher") // a regulated tenant: refused
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode != 403 || se.ErrorCode != "PRECHECK-TEN-001" {
		t.Fatalf("err = %v", err)
	}
	if upstream.Hits(dwsfake.EncryptCluster) != 0 {
		t.Fatal("a refused call was forwarded")
	}
	resp, err := encrypt("SMcompatible")
	if err != nil || *resp.JobId != dwsfake.ExampleJobID || upstream.Hits(dwsfake.EncryptCluster) != 1 {
		t.Fatalf("allowed: %v, %d hits", err, upstream.Hits(dwsfake.EncryptCluster))
	}
	if got := upstream.EncryptCalls()[0]; got.Header.Get("Authorization") == "" || !bytes.Contains(got.Body, []byte("SMcompatible")) {
		t.Errorf("forwarded call %+v", got)
	}
	// Every other call passes through.
	if _, err := client.ListClusterDetails(&model.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID}); err != nil || upstream.Hits(dwsfake.ListClusterDetails) != 1 {
		t.Errorf("pass-through: %v, %d hits", err, upstream.Hits(dwsfake.ListClusterDetails))
	}
	// A call the gate refuses for its form is the caller's doing: counted as refused, not as precheck's error.
	path := "/v2/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + "/encrypt"
	plain, err := http.Post(s.URL+path, "text/plain", strings.NewReader(`{"encrypt": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest || upstream.Hits(dwsfake.EncryptCluster) != 1 {
		t.Fatalf("a text/plain body: %d, %d hits", plain.StatusCode, upstream.Hits(dwsfake.EncryptCluster))
	}
	for _, c := range []struct {
		result string
		want   float64
	}{{"", 3}, {"denied", 1}, {"allowed", 1}, {"refused", 1}, {"error", 0}} {
		labels := map[string]string{"endpoint": "gate"}
		if c.result != "" {
			labels["result"] = c.result
		}
		if got := metric(t, s.URL, "precheck_decisions_total", labels); got != c.want {
			t.Errorf("gate decisions %v counted: %v, want %v", labels, got, c.want)
		}
	}
	if !strings.Contains(log.String(), `"result":"refused"`) {
		t.Errorf("no refusal in the decision log:\n%s", log.String())
	}
	if !strings.Contains(log.String(), `"forwarded":false`) || !strings.Contains(log.String(), `"forwarded":true`) {
		t.Errorf("decision log:\n%s", log.String())
	}
	for _, secret := range []string{dwsfake.TestAK, dwsfake.TestSK, "Signature="} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("%q in the decision log", secret)
		}
	}
}

// TestReloadUnderLoad reloads to a good and to a broken policy while clients keep asking: no request fails,
// the good policy takes over, the broken one is reported and the good one keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeData := func(agent string) {
		os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "`+agent+`"}}}`), 0o644)
	}
	writeData("8.3.0.200")
	source := &server.Files{Read: func() (*policy.Policy, error) { return policy.LoadWithOverrides(dir) }, Paths: []string{dir}, Name: dir}
	s := start(t, server.Config{Source: source, Backend: regoBackend})
	doc := example(t, "allowed-api-example.json")

	var failures, allowed, denied atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, body, _ := postJSON(t, s.URL+"/v1/precheck", doc)
				switch {
				case status != 200:
					failures.Add(1)
				case bytes.Contains(body, []byte(`"allowed":true`)):
					allowed.Add(1)
				default:
					denied.Add(1)
				}
			}
		})
	}
	// Each phase lasts until the clients have been answered a few times in it, however slow the machine.
	answered := func() int64 { return failures.Load() + allowed.Load() + denied.Load() }
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s: %d failures, %d allowed, %d denied", what, failures.Load(), allowed.Load(), denied.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(func() bool { return allowed.Load() >= 8 }, "answers from the first policy")
	writeData("9.0.0")
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(func() bool { return denied.Load() >= 8 }, "answers from the reloaded policy")
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	if err := s.Reload(context.Background()); err == nil {
		t.Error("a broken policy reloaded")
	}
	after := answered()
	waitFor(func() bool { return answered() >= after+8 }, "answers after the failed reload")
	close(stop)
	wg.Wait()

	if failures.Load() != 0 || allowed.Load() == 0 || denied.Load() == 0 {
		t.Fatalf("%d failures, %d allowed (old policy), %d denied (new policy)", failures.Load(), allowed.Load(), denied.Load())
	}
	if status, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); status != 200 || !bytes.Contains(body, []byte("below the required 9.0.0")) {
		t.Errorf("after the failed reload: %d %s", status, body)
	}
	status, body := get(t, s.URL+"/readyz")
	if status != 200 || !bytes.Contains(body, []byte("broken.rego:3:6")) {
		t.Errorf("readyz does not report the failed reload: %d %s", status, body)
	}
	if got := metric(t, s.URL, "precheck_policy_reloads_total", map[string]string{"result": "failure"}); got < 1 {
		t.Errorf("reload failures counted: %v", got)
	}
	// The file watcher notices changes by itself.
	os.Remove(filepath.Join(dir, "broken.rego"))
	writeData("8.3.0.200")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); bytes.Contains(body, []byte(`"allowed":true`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change on disk was not picked up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGracefulShutdown: requests in flight when the server is told to stop still get their answers.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	upstream := dwsfake.New()
	defer upstream.Close()
	upstream.SeedExample()
	upstream.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Delay: 500 * time.Millisecond})
	u, _ := url.Parse(upstream.URL)
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u})

	proxyAsAPI := &dwsfake.Server{URL: s.URL}
	client, _ := proxyAsAPI.DWSClient(dwsfake.ExampleProjectID, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := client.ListClusterDetails(&model.ListClusterDetailsRequest{ClusterId: dwsfake.ExampleClusterID})
			errs <- err
		})
	}
	// Stop once every call is waiting on the slow upstream (which counts a call as it arrives).
	for deadline := time.Now().Add(10 * time.Second); upstream.Hits(dwsfake.ListClusterDetails) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 calls reached the upstream", upstream.Hits(dwsfake.ListClusterDetails))
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a request in flight failed during shutdown: %v", err)
		}
	}
	if err := <-s.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	s.done <- nil // for the cleanup
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Error("the server still accepts connections after shutdown")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	upstream := dwsfake.New()
	defer upstream.Close()
	upstream.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Delay: 300 * time.Millisecond})
	u, _ := url.Parse(upstream.URL)
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u, MaxInFlight: 2})
	var busy atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			status, _ := get(t, s.URL+"/v1.0/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID)
			if status == 503 {
				busy.Add(1)
			}
		})
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Error("6 concurrent requests over a limit of 2, and none was turned away")
	}
}

// bundleServer serves one bundle at a time over HTTP with an ETag, as OPA's bundle servers do.
type bundleServer struct {
	*httptest.Server
	mu          sync.Mutex
	bundle      []byte
	notModified atomic.Int32
}

func newBundleServer(t *testing.T) *bundleServer {
	b := &bundleServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		data := b.bundle
		b.mu.Unlock()
		sum := sha256.Sum256(data)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		if r.Header.Get("If-None-Match") == etag {
			b.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(data)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *bundleServer) serve(data []byte) {
	b.mu.Lock()
	b.bundle = data
	b.mu.Unlock()
}

// signedBundle builds the default policy's bundle with the given revision and guestAgent minimum, signed
// with key; tamper changes the data after signing.
func signedBundle(t *testing.T, key *rsa.PrivateKey, revision, agent string, tamper bool) []byte {
	t.Helper()
	p, err := embeddedDefault() // Bundle returns a copy to change
	if err != nil {
		t.Fatal(err)
	}
	b := p.Bundle()
	b.Manifest.Revision = revision
	data, _ := json.Marshal(p.Data())
	var copied map[string]any
	json.Unmarshal(data, &copied)
	copied["precheck"].(map[string]any)["config"].(map[string]any)["min_guest_agent_version"] = agent
	b.Data = copied
	if key != nil {
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(pemKey), "RS256", ""), "precheck", false); err != nil {
			t.Fatal(err)
		}
	}
	if tamper {
		copied["precheck"].(map[string]any)["config"].(map[string]any)["min_guest_agent_version"] = "1.0.0"
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBundleService(t *testing.T) {
	t.Parallel()
	key, _ := rsaKeys(t)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	verify := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
		"precheck": {Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})), Algorithm: "RS256"},
	}, "precheck", "", nil)

	bs := newBundleServer(t)
	bs.serve(signedBundle(t, key, "rev-1", "8.3.0.200", false))
	source := &server.BundleService{URL: bs.URL + "/bundles/precheck.tar.gz", Interval: 50 * time.Millisecond, Verify: verify}
	// The rego engine: what is tested is the service and the server's reloads, which are the engine's
	// (wasm's own are tested in package wasm), and compiling to wasm twice is slow under the race detector.
	s := start(t, server.Config{Source: source, Backend: regoBackend})
	doc := example(t, "allowed-api-example.json")

	revision := func() string {
		_, body := get(t, s.URL+"/readyz")
		var r struct{ Revision string }
		json.Unmarshal(body, &r)
		return r.Revision
	}
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if revision() != "rev-1" {
		t.Fatalf("revision %q", revision())
	}
	waitFor(func() bool { return bs.notModified.Load() >= 2 }, "polls answered 304 Not Modified")

	bs.serve(signedBundle(t, key, "rev-2", "9.0.0", false))
	waitFor(func() bool { return revision() == "rev-2" }, "the changed bundle")
	if _, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); !bytes.Contains(body, []byte("below the required 9.0.0")) {
		t.Errorf("rev-2 does not decide: %s", body)
	}

	lastError := func() string {
		_, body := get(t, s.URL+"/readyz")
		var r struct {
			LastReload struct{ Error string } `json:"last_reload"`
		}
		json.Unmarshal(body, &r)
		return r.LastReload.Error
	}
	bs.serve(signedBundle(t, key, "rev-3", "8.3.0.200", true)) // tampered after signing
	waitFor(func() bool { return strings.Contains(lastError(), "digest mismatch") }, "the tampered bundle to be refused")
	if revision() != "rev-2" {
		t.Errorf("revision %q after a tampered bundle, want rev-2 still serving", revision())
	}
	bs.serve(signedBundle(t, nil, "rev-4", "8.3.0.200", false)) // not signed at all
	waitFor(func() bool { return strings.Contains(lastError(), "signatures") }, "the unsigned bundle to be refused")
	if revision() != "rev-2" {
		t.Errorf("revision %q after an unsigned bundle, want rev-2 still serving", revision())
	}
	if _, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); !bytes.Contains(body, []byte("below the required 9.0.0")) {
		t.Errorf("rev-2 no longer decides: %s", body)
	}
	if got := metric(t, s.URL, "precheck_policy_reloads_total", map[string]string{"result": "failure"}); got < 2 {
		t.Errorf("reload failures counted: %v", got)
	}
}

// TestLoad is a bounded load test on loopback: 50 clients at once, 3 requests each, per engine, zero
// errors; it reports throughput and latency percentiles (go test -run TestLoad -v). A count, not a
// duration: the test is of serving under concurrency, and its work is the same on any machine (the
// figures in the README come from the benchmarks and an outside load generator).
func TestLoad(t *testing.T) {
	t.Parallel()
	doc := example(t, "allowed-api-example.json")
	for _, engine := range []struct {
		name    string
		backend func() policy.Backend
	}{{"rego", regoBackend}, {"wasm", func() policy.Backend { return wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()}) }}} {
		t.Run(engine.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, server.Config{Source: defaultSource(), Backend: engine.backend})
			const clients, each = 50, 3
			// One connection per client at most: the server caps the connections of one address (64), and a
			// transport left to itself may hold more connections than it has requests in flight (it keeps a
			// dial that an idle connection overtook), which under load can reach that cap. CI failed once with
			// 2 errors in 150 requests; the errors and the refused connections are now reported.
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
			var mu sync.Mutex
			var latencies []time.Duration
			var errors atomic.Int64
			began := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					var mine []time.Duration
					for range each {
						start := time.Now()
						resp, err := client.Post(s.URL+"/v1/precheck", "application/json", bytes.NewReader(doc))
						if err != nil {
							errors.Add(1)
							t.Log(err)
							continue
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) {
							errors.Add(1)
						}
						mine = append(mine, time.Since(start))
					}
					mu.Lock()
					latencies = append(latencies, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			duration := time.Since(began)
			if errors.Load() != 0 || len(latencies) != clients*each {
				t.Fatalf("%d errors in %d requests (connections refused: %v)", errors.Load(), len(latencies),
					metric(t, s.URL, "precheck_http_connections_refused_total", nil))
			}
			slices.Sort(latencies)
			pct := func(p float64) time.Duration { return latencies[int(float64(len(latencies)-1)*p)] }
			t.Logf("%s: %d clients, %d requests in %v: %.0f req/s, p50 %v, p99 %v, 0 errors",
				engine.name, clients, len(latencies), duration, float64(len(latencies))/duration.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
		})
	}
}

// apiError is the API's error shape.
type apiError struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// TestEnvelope: /v1/precheck takes OPA's {"input": <document>} as well as the document, as strictly.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, DecisionLog: &log})
	doc := example(t, "allowed-api-example.json")

	status, body, header := postJSON(t, s.URL+"/v1/precheck", []byte(`{"input": `+string(doc)+`}`))
	if status != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) || header.Get("X-Decision-Id") == "" {
		t.Fatalf("an envelope: %d %s", status, body)
	}
	_, bare, _ := postJSON(t, s.URL+"/v1/precheck", doc)
	if !bytes.Equal(body, bare) {
		t.Errorf("the envelope and the bare document decide differently:\n%s\n%s", body, bare)
	}
	// The log names the cluster inside the envelope.
	if !strings.Contains(strings.SplitN(log.String(), "\n", 2)[0], `"cluster_id":"97cbaab3-939e-4dbc-9187-0fe240f2b9fd"`) {
		t.Errorf("decision log:\n%s", log.String())
	}

	for _, tt := range []struct {
		name string
		body string
		says string
	}{
		{"a second member", `{"decision_id": "x", "input": ` + string(doc) + `}`, `unknown member "decision_id"`},
		// policy.ReadEnvelope reads anything but exactly {"input": ...} as a document, so the first member
		// it does not know is the one named.
		{"a second member after the input", `{"input": ` + string(doc) + `, "inptu_extra": {}}`, `unknown member "input"`},
		{"the input twice", `{"input": ` + string(doc) + `, "input": ` + string(doc) + `}`, "input"},
		{"input not an object", `{"input": [1]}`, "input"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := postJSON(t, s.URL+"/v1/precheck", []byte(tt.body))
			var e apiError
			json.Unmarshal(body, &e)
			if status != 400 || e.ErrorCode != server.CodeMalformed || !strings.Contains(e.ErrorMsg, tt.says) {
				t.Errorf("%d %s", status, body)
			}
		})
	}
}

// slowRequest sends a request's headers and the first part of its body, and no more.
func slowRequest(t *testing.T, base, method, path string, header http.Header, body string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	req.WriteString(method + " " + path + " HTTP/1.1\r\nHost: precheck\r\nContent-Type: application/json\r\n")
	header.Write(&req)
	req.WriteString("Content-Length: " + strconv.Itoa(len(body)+100) + "\r\n\r\n" + body)
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBodyTimeout: a body that does not arrive within BodyReadTimeout is answered 408, and never reaches
// the policy or the gate.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	upstream := dwsfake.New()
	defer upstream.Close()
	upstream.SeedExample()
	u, _ := url.Parse(upstream.URL)
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u, DecisionLog: &log, BodyReadTimeout: 200 * time.Millisecond})

	encrypt := "/v2/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + "/encrypt"
	for _, path := range []string{"/v1/precheck", encrypt} {
		t.Run(path, func(t *testing.T) {
			began := time.Now()
			c := slowRequest(t, s.URL, "POST", path, http.Header{"X-Auth-Token": {"tok-3f9a2c71e4b8d605"}}, `{"encrypt": {"crypt_algorithm": "SMcompatible"`)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			var e apiError
			json.Unmarshal(body, &e)
			if waited := time.Since(began); resp.StatusCode != http.StatusRequestTimeout || e.ErrorCode != server.CodeBodyTimeout || waited > 2*time.Second {
				t.Errorf("after %v: %d %s", waited, resp.StatusCode, body)
			}
			// What is left of the body is never read: the connection is closed.
			if _, err := br.ReadByte(); err == nil {
				t.Error("the connection stays open after a 408")
			}
		})
	}
	if upstream.Hits(dwsfake.EncryptCluster) != 0 || log.String() != "" {
		t.Errorf("a request whose body timed out went on: %d upstream calls, decision log %q", upstream.Hits(dwsfake.EncryptCluster), log.String())
	}
	if got := metric(t, s.URL, "precheck_http_rejected_total", map[string]string{"reason": "body_timeout"}); got != 2 {
		t.Errorf("body timeouts counted: %v", got)
	}
	if got := metric(t, s.URL, "precheck_decisions_total", nil); got != 0 {
		t.Errorf("decisions counted: %v", got)
	}
}

// rawUpstream is an upstream that reads each request and answers with whatever answer writes, raw.
func rawUpstream(t *testing.T, answer func(*http.Request) string) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, answer(req))
			}()
		}
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// TestUpstreamSecretsNotEchoed: an upstream that echoes the caller's credentials (in a malformed status
// line, in garbage) gets them into neither precheck's log, nor its 502, nor the decision log.
func TestUpstreamSecretsNotEchoed(t *testing.T) {
	t.Parallel()
	const token = "tok-3f9a2c71e4b8d605" // short enough that only redaction by the header's name catches it
	sum := sha256.Sum256([]byte("the request, signed"))
	signature := hex.EncodeToString(sum[:])
	header := http.Header{
		"X-Auth-Token":  {token},
		"Authorization": {"SDK-HMAC-SHA256 Access=HPUAQ3RTSKE4HOT1DQKE, SignedHeaders=content-type;host;x-sdk-date, Signature=" + signature},
		"X-Sdk-Date":    {"20240101T000000Z"},
	}
	inv, err := facts.ParseJSON([]byte(`[{"project_id": "` + dwsfake.ExampleProjectID + `", "cluster_id": "` + dwsfake.ExampleClusterID + `",
		"cluster": {"version": "8.1.3.310", "guest_agent_version": "8.3.0.200", "status": "AVAILABLE", "task_status": "", "encrypted": false, "dr_relationship": false},
		"key": {"key_id": "` + dwsfake.ExampleKeyID + `", "key_state": "2"}, "tenant": {"class": "regulated"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	encryptBody := `{"encrypt": {"crypt_algorithm": "SMcompatible", "master_key_id": "` + dwsfake.ExampleKeyID + `"}}`

	for _, tt := range []struct {
		name   string
		answer func(*http.Request) string
	}{
		{"token in a malformed status line", func(r *http.Request) string {
			return "HTTP/1.1 " + r.Header.Get("X-Auth-Token") + " OK\r\nContent-Length: 0\r\n\r\n"
		}},
		{"signature in garbage", func(r *http.Request) string {
			_, sig, _ := strings.Cut(r.Header.Get("Authorization"), "Signature=")
			return "garbage" + sig + "garbage\r\n\r\n"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged, decisions policytest.SyncBuffer
			s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: rawUpstream(t, tt.answer), Facts: inv,
				DecisionLog: &decisions, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			for _, call := range []struct{ method, path, body string }{
				{"GET", "/v1.0/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID, ""},                      // passed through
				{"POST", "/v2/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + "/encrypt", encryptBody}, // allowed by the gate
			} {
				var body io.Reader
				if call.body != "" {
					body = strings.NewReader(call.body)
				}
				req, _ := http.NewRequest(call.method, s.URL+call.path, body)
				req.Header = header.Clone()
				if call.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var e apiError
				json.Unmarshal(out, &e)
				if resp.StatusCode != http.StatusBadGateway || e.ErrorCode != server.CodeUpstream || !strings.Contains(e.ErrorMsg, "[REDACTED]") {
					t.Errorf("%s %s: %d %s", call.method, call.path, resp.StatusCode, out)
				}
				for _, secret := range []string{token, signature} {
					if strings.Contains(string(out), secret) {
						t.Errorf("%s %s: the 502 echoes a secret: %s", call.method, call.path, out)
					}
				}
			}
			if !strings.Contains(logged.String(), "[REDACTED]") || !strings.Contains(decisions.String(), `"forwarded":true`) {
				t.Errorf("the failures were not logged, or the encrypt call not forwarded:\nlog:\n%s\ndecision log:\n%s", logged.String(), decisions.String())
			}
			for _, secret := range []string{token, signature} {
				if strings.Contains(logged.String(), secret) {
					t.Errorf("the log holds a secret:\n%s", logged.String())
				}
				if strings.Contains(decisions.String(), secret) {
					t.Errorf("the decision log holds a secret:\n%s", decisions.String())
				}
			}
		})
	}
}

// A policy whose rules or data change while its manifest keeps the revision is loaded: the revision is
// the manifest's word, the content is what decides.
func TestReloadOfNewContentUnderTheSameRevision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".manifest", `{"revision": "r1"}`)
	write("data.json", `{"precheck": {"config": {"min_guest_agent_version": "8.3.0.200"}}}`)
	src := &server.Files{Read: func() (*policy.Policy, error) { return policy.LoadWithOverrides(dir) }, Name: "overrides"}
	s := start(t, server.Config{Source: src, Backend: regoBackend})
	doc := example(t, "allowed-api-example.json")
	if _, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); !bytes.Contains(body, []byte(`"allowed":true`)) {
		t.Fatalf("before: %s", body)
	}
	if err := s.Reload(context.Background()); err != nil { // nothing changed
		t.Fatal(err)
	}
	write("data.json", `{"precheck": {"config": {"min_guest_agent_version": "9.0.0"}}}`)
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := postJSON(t, s.URL+"/v1/precheck", doc); !bytes.Contains(body, []byte("PRECHECK-VER-002")) {
		t.Errorf("the new minimum (guestAgent >= 9.0.0) under the same revision is not applied: %s", body)
	}
	for result, want := range map[string]float64{"unchanged": 1, "success": 2} {
		if got := metric(t, s.URL, "precheck_policy_reloads_total", map[string]string{"result": result}); got != want {
			t.Errorf("reloads %s: %v, want %v", result, got, want)
		}
	}
}

// heldBackend is the rego backend whose evaluations under one revision wait, once entered, until released:
// a reload can then happen during a decision.
type heldBackend struct {
	revision         string
	entered, release chan struct{}
}

func (b *heldBackend) Name() string { return "rego" }

func (b *heldBackend) Prepare(ctx context.Context, p *policy.Policy) (policy.Evaluator, error) {
	ev, err := policy.Rego().Prepare(ctx, p)
	if err != nil || p.Revision() != b.revision {
		return ev, err
	}
	return heldEvaluator{ev, b}, nil
}

type heldEvaluator struct {
	policy.Evaluator
	b *heldBackend
}

func (e heldEvaluator) Eval(ctx context.Context, doc *policy.Document, now time.Time) (*policy.Decision, error) {
	d, err := e.Evaluator.Eval(ctx, doc, now)
	e.b.entered <- struct{}{}
	<-e.b.release
	return d, err
}

// The decision log names the policy that decided, not the one loaded by the time the decision is logged.
func TestDecisionLogNamesThePolicyThatDecided(t *testing.T) {
	t.Parallel()
	load := func(revision, agent string) *policy.Policy {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".manifest"), []byte(`{"revision": "`+revision+`"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "`+agent+`"}}}`), 0o644)
		p, err := policy.LoadWithOverrides(dir)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	r1, r2 := load("r1", "8.3.0.200"), load("r2", "9.0.0") // r2 would refuse the call r1 allows
	var current atomic.Pointer[policy.Policy]
	current.Store(r1)
	held := &heldBackend{revision: "r1", entered: make(chan struct{}), release: make(chan struct{})}
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: &server.Files{Read: func() (*policy.Policy, error) { return current.Load(), nil }, Name: "test"},
		Backend: func() policy.Backend { return held }, DecisionLog: &log})
	answered := make(chan []byte)
	go func() {
		_, body, _ := postJSON(t, s.URL+"/v1/precheck", example(t, "allowed-api-example.json"))
		answered <- body
	}()
	<-held.entered // r1 has decided, and waits
	current.Store(r2)
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	body := <-answered
	line := log.String()
	if !bytes.Contains(body, []byte(`"allowed":true`)) || !strings.Contains(line, `"policy_revision":"r1"`) {
		t.Errorf("r1 decided %s\nthe log says %s", body, line)
	}
}
