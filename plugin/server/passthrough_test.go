package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy/policytest"
)

// sendRaw writes raw on a new connection to the server at base and returns all it answers.
func sendRaw(t *testing.T, base, raw string) string {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestTrailersOnPassThroughRefused: a passed-through call's trailers could carry an override or rewrite
// header that a server merging them into the headers would act on; the guarded call refuses them, and so
// does every other.
func TestTrailersOnPassThroughRefused(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u})
	path := "/v1.0/" + dwsfake.ExampleProjectID + "/clusters/" + dwsfake.ExampleClusterID + "/tags"
	got := sendRaw(t, s.URL, "POST "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"+
		"2\r\n{}\r\n0\r\nX-Original-URL: /v2/"+dwsfake.ExampleProjectID+"/clusters/"+dwsfake.ExampleClusterID+"/encrypt\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400") || !strings.Contains(got, gate.CodeRouteRefused) {
		t.Errorf("answer %.200q, want 400 %s", got, gate.CodeRouteRefused)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the call with trailers reached the upstream (%d hits)", n)
	}
}

// TestMalformedBodyIsNotEchoed: what the caller sent in a body that cannot be read (here a trailer line
// holding a token) does not come back in the answer.
func TestMalformedBodyIsNotEchoed(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend})
	got := sendRaw(t, s.URL, "POST /v1/precheck HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"2\r\n{}\r\n0\r\nX-Auth-Token tok-3f9a2c71e4b8d605\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400") || strings.Contains(got, "tok-3f9a2c71e4b8d605") {
		t.Errorf("answer %q: want a 400 that does not quote the body", got)
	}
}

// TestDecisionLogBoundsIDs: the log names the call by the IDs the caller gave, bounded: a 900 KB
// project_id made one 1.8 MB log line.
func TestDecisionLogBoundsIDs(t *testing.T) {
	t.Parallel()
	var log policytest.SyncBuffer
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, DecisionLog: &log})
	doc := `{"request": {"project_id": "` + strings.Repeat("\u2028", 300000) + `", "cluster_id": "x", "body": {}}}`
	if status, body, _ := postJSON(t, s.URL+"/v1/precheck", []byte(doc)); status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	if n := len(log.String()); n == 0 || n > 4096 {
		t.Errorf("the decision log line is %d bytes", n)
	}
}

// TestSlowReaderFreesItsSlot: a client that reads a large passed-through answer slowly (here: not at all)
// holds no in-flight slot once the upstream has answered; the slot bounds the work, not the copy.
func TestSlowReaderFreesItsSlot(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 16<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u, MaxInFlight: 1})
	su, _ := url.Parse(s.URL)
	c, err := net.Dial("tcp", su.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(c, "GET /v1.0/"+dwsfake.ExampleProjectID+"/clusters HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).Peek(1); err != nil { // the answer has begun; nothing more is read
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is now blocked writing the answer
	if status, body, _ := postJSON(t, s.URL+"/v1/precheck", []byte(`{}`)); status == http.StatusServiceUnavailable {
		t.Errorf("the decision API is busy while one client sits on its answer: %d %s", status, body)
	}
}

// TestHungUpstreamFreesItsSlot: the wait for an upstream that never answers ends with WriteTimeout (past
// which the answer could not be written anyway), and frees the slot.
func TestHungUpstreamFreesItsSlot(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer up.Close()
	defer close(release)
	u, _ := url.Parse(up.URL)
	s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, Upstream: u, MaxInFlight: 1, WriteTimeout: 300 * time.Millisecond})
	go func() {
		// The server gives up on this one's answer after WriteTimeout; what the client hears does not matter.
		if resp, err := http.Get(s.URL + "/v1.0/" + dwsfake.ExampleProjectID + "/clusters"); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the call holds the one slot
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body, _ := postJSON(t, s.URL+"/v1/precheck", []byte(`{}`))
		if status != http.StatusServiceUnavailable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after a call to a hung upstream (WriteTimeout 300ms), its slot is still held: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
