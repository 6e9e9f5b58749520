package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/precheck/precheck/policy/policytest"
)

// TestServeVerb runs `precheck serve` in-process: it answers decisions, reloads its policy directory on
// SIGHUP, and exits 0 when told to stop.
func TestServeVerb(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "8.3.0.200"}}}`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, &env{stdin: strings.NewReader(""), stdout: pw, stderr: &errOut}, []string{"serve", "--addr", "127.0.0.1:0", "--policy", dir})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address printed: %v\n%s", err, errOut.String())
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(line, "precheck serving on "))
	doc, _ := os.ReadFile("../../examples/inputs/allowed-api-example.json")
	decide := func() string {
		resp, err := http.Post(base+"/v1/precheck", "application/json", bytes.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := decide(); !strings.Contains(got, `"allowed":true`) {
		t.Fatalf("decision %s", got)
	}
	// A change on disk, then SIGHUP: the next decision uses it (the watcher may have been quicker).
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_guest_agent_version": "9.0.0"}}}`), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(decide(), "below the required 9.0.0") {
		if time.Now().After(deadline) {
			t.Fatal("the policy was not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case c := <-code:
		if c != exitAllowed {
			t.Errorf("exit %d\n%s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--bundle-url", "http://x", "--policy", "rego"}, "not both"},
		{[]string{"serve", "--policy", "rego", "--bundle-key", "pub.pem"}, "--bundle-key verifies the bundles --bundle-url serves"},
		{[]string{"serve", "--bundle-key-alg", "ES256"}, "--bundle-key verifies the bundles --bundle-url serves"},
		{[]string{"serve", "--bundle-url", "http://x", "--bundle-key", ""}, "--bundle-key is empty"},
		{[]string{"serve", "--bundle-url", "http://x", "--bundle-key-id", "prod"}, "--bundle-key is empty"},
		{[]string{"serve", "--upstream", "dws.example.com"}, "is not an absolute URL"},
		{[]string{"serve", "--engine", "jit"}, `unknown engine "jit"`},
		{[]string{"serve", "--upstream", "http://x", "--inventory", "nope.json"}, "nope.json"},
		{[]string{"serve", "--addr", "256.0.0.1:1"}, "256.0.0.1"},
		{[]string{"serve", "--max-conns-per-client", "0"}, "--max-conns-per-client must be positive"},
		{[]string{"serve", "--body-read-timeout", "0s"}, "--body-read-timeout must be positive"},
		{[]string{"serve", "--read-header-timeout", "-1s"}, "--read-header-timeout must be positive"},
		{[]string{"serve", "--max-in-flight", "0"}, "--max-in-flight must be positive"},
		{[]string{"serve", "--max-body", "-5"}, "--max-body must be positive"},
	} {
		code, _, errOut := precheck(t, "", tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, %s", tt.args, code, errOut)
		}
	}
}

// TestServeLimitsFlags: the limits are flags, with their defaults in the help, and they reach the server.
func TestServeLimitsFlags(t *testing.T) {
	_, help, _ := precheck(t, "", "serve", "--help")
	for _, want := range []string{"-max-conns-per-client int", "(default 64)", "-read-header-timeout duration", "(default 5s)",
		"-body-read-timeout duration", "(default 10s)", "-max-in-flight int", "(default 256)", "-max-body int", "(default 1048576)"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, &env{stdin: strings.NewReader(""), stdout: pw, stderr: &errOut},
			[]string{"serve", "--addr", "127.0.0.1:0", "--max-conns-per-client", "1", "--body-read-timeout", "300ms"})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address printed: %v\n%s", err, errOut.String())
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, "precheck serving on ")), "http://")

	// One connection, trickling its body: answered 408 once --body-read-timeout has passed.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(slow, "POST /v1/precheck HTTP/1.1\r\nHost: precheck\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")

	// A second one from the same address, while the first is open: closed at once, unanswered.
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(second, "GET /healthz HTTP/1.1\r\nHost: precheck\r\n\r\n")
	if n, err := second.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Errorf("a second connection over --max-conns-per-client 1: read %d, %v", n, err)
	}

	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if waited := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "PRECHECK-SERVE-007") || waited > 3*time.Second {
		t.Errorf("after %v: %d %s", waited, resp.StatusCode, body)
	}
	cancel()
	select {
	case c := <-code:
		if c != exitAllowed {
			t.Errorf("exit %d\n%s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestServeBundleServiceDown: an unreachable --bundle-url is logged at once, redacted, and polled again
// with a wait that doubles; the server keeps running (not ready) meanwhile.
func TestServeBundleServiceDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/bundle.tar.gz?token=s3cr3tvalue42"
	ln.Close() // nothing listens there now: every poll is refused
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &policytest.SyncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: errOut},
			[]string{"serve", "--addr", "127.0.0.1:0", "--bundle-url", down, "--bundle-poll", "40ms"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(errOut.String(), "bundle service poll failed") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("failed polls not logged:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-code
	log := errOut.String()
	for _, want := range []string{"failures=1 next_poll=80ms", "failures=2 next_poll=160ms", "failures=3 next_poll=320ms", "connection refused"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "s3cr3tvalue42") {
		t.Errorf("the URL's token was logged:\n%s", log)
	}
}
