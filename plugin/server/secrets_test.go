package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy/policytest"
)

// A bundle URL may carry a secret (a user's password, a token in its query), and the service's name goes
// to /readyz (unauthenticated), the logs, the errors a caller sees and the decision log: none may show it,
// however the URL comes to be quoted (a failed poll, net/http's own error, the policy's source).
func TestBundleURLSecretsStayOut(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2pass"
	var bad bytes.Buffer // a policy that loads, and answers a decision the server refuses to act on
	zw := gzip.NewWriter(&bad)
	tw := tar.NewWriter(zw)
	for name, text := range map[string]string{
		"/decision.rego": "package precheck\n\ndecision := {\"allowed\": false, \"violations\": [], \"warnings\": []}\n",
		"/data.json":     `{}`,
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(text)), Typeflag: tar.TypeReg})
		tw.Write([]byte(text))
	}
	tw.Close()
	zw.Close()
	bundles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Write(bad.Bytes())
	}))
	defer bundles.Close()
	host := strings.TrimPrefix(bundles.URL, "http://")

	for _, u := range []string{
		"http://deploy:" + secret + "@" + host + "/down",
		"http://" + host + "/down?access_token=" + secret,
		"http://" + host + "/down?v=2&api_key=" + secret + "#" + secret,
		"http://127.0.0.1:1/unreachable?token=" + secret, // net/http's error quotes the URL
	} {
		src := &server.BundleService{URL: u, Client: &http.Client{Timeout: time.Second}}
		s := start(t, server.Config{Source: src, Backend: regoBackend}) // unready: the first load failed
		_, body := get(t, s.URL+"/readyz")
		if strings.Contains(string(body), secret) || !strings.Contains(string(body), `"source":"http://`) {
			t.Errorf("%s: /readyz says %s", u, body)
		}
	}

	var log policytest.SyncBuffer
	src := &server.BundleService{URL: bundles.URL + "/ok?token=" + secret}
	s := start(t, server.Config{Source: src, Backend: regoBackend, DecisionLog: &log})
	status, body, _ := postJSON(t, s.URL+"/v1/precheck", example(t, "allowed-api-example.json"))
	if status != http.StatusInternalServerError || strings.Contains(string(body), secret) || strings.Contains(log.String(), secret) {
		t.Errorf("an evaluation error: %d %s\nlog: %s", status, body, log.String())
	}
	if got := src.String(); got != "http://"+host+"/ok?token=[REDACTED]" {
		t.Errorf("String() = %q", got)
	}
}
