package server_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/gate/upstreamtest"
	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// The bypass suite for `precheck serve --upstream`: a raw client sends the corpus (upstreamtest.Corpus)
// byte for byte to the proxy, which stands in front of the raw upstream; for both engines, with FailOpen
// off and on. The oracle asks an engine of the same backend on the same policy about every call the
// upstream would execute: none may be one the policy refuses.

// bypassBackend is one backend, as a Config wants it, with an oracle on an engine of that backend.
type bypassBackend struct {
	name    string
	backend func() policy.Backend
	oracle  *upstreamtest.Oracle
}

type bypassSetup struct {
	policy   *policy.Policy
	backends []bypassBackend
}

// bypassPolicy is built once per test binary: the default policy with the compliance team's data
// classifying upstreamtest.RegulatedProject as regulated. The wasm backend is one value for the oracle and
// every server, so that the policy is compiled once.
var bypassPolicy = sync.OnceValues(func() (*bypassSetup, error) {
	p, err := upstreamtest.Policy()
	if err != nil {
		return nil, err
	}
	wasmBackend := wasm.Backend(wasm.Config{MachineCode: policytest.MachineCode()})
	setup := &bypassSetup{policy: p}
	for _, b := range []struct {
		name    string
		backend func() policy.Backend
	}{{"rego", policy.Rego}, {"wasm", func() policy.Backend { return wasmBackend }}} {
		e, err := policy.New(context.Background(), p, policy.WithBackend(b.backend()))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		setup.backends = append(setup.backends, bypassBackend{name: b.name, backend: b.backend,
			oracle: &upstreamtest.Oracle{Checker: e, Facts: upstreamtest.Facts()}})
	}
	return setup, nil
})

func mustBypassPolicy(t *testing.T) *bypassSetup {
	t.Helper()
	s, err := bypassPolicy()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startBypassProxy starts `serve` in front of up, its forwarded calls carried by tr; it returns the proxy's
// address.
func startBypassProxy(t *testing.T, setup *bypassSetup, b bypassBackend, failOpen bool, up *upstreamtest.Server, tr http.RoundTripper) string {
	t.Helper()
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, server.Config{
		Source:    &server.Files{Read: func() (*policy.Policy, error) { return setup.policy, nil }, Name: "bypass policy"},
		Backend:   b.backend,
		Upstream:  u,
		Transport: tr,
		Facts:     upstreamtest.Facts(),
		FailOpen:  failOpen,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

func bypassFailOpenName(on bool) string {
	if on {
		return "fail-open"
	}
	return "fail-closed"
}

// forEachBypassProxy runs f, in parallel, for each backend with FailOpen off and on, with a proxy of its own in
// front of an upstream of its own.
func forEachBypassProxy(t *testing.T, f func(t *testing.T, config string, b bypassBackend, addr string, up *upstreamtest.Server, tr *http.Transport)) {
	setup := mustBypassPolicy(t)
	for _, b := range setup.backends {
		for _, failOpen := range []bool{false, true} {
			config := b.name + "/" + bypassFailOpenName(failOpen)
			t.Run(config, func(t *testing.T) {
				t.Parallel()
				up := upstreamtest.NewServer()
				t.Cleanup(up.Close)
				tr := &http.Transport{}
				t.Cleanup(tr.CloseIdleConnections)
				f(t, config, b, startBypassProxy(t, setup, b, failOpen, up, tr), up, tr)
			})
		}
	}
}

// bypassSend sends the case's bytes to the proxy and waits until the upstream has read everything that
// reached it.
func bypassSend(t *testing.T, ctx context.Context, addr string, c upstreamtest.Case, up *upstreamtest.Server, tr *http.Transport) (int, []byte, []upstreamtest.Request) {
	t.Helper()
	status, body := c.Exchange(ctx, addr, "dws.test")
	if err := up.Quiesce(ctx, tr); err != nil {
		t.Fatal(err)
	}
	return status, body, up.Take()
}

// TestServeNoBypass sends the corpus through the proxy.
func TestServeNoBypass(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	byClass := map[string][]string{}
	t.Cleanup(func() {
		if len(byClass) == 0 {
			return
		}
		var b strings.Builder
		for _, class := range slices.Sorted(maps.Keys(byClass)) {
			fmt.Fprintf(&b, "\n  %-10s %3d bypasses, e.g. %s", class, len(byClass[class]), byClass[class][0])
		}
		t.Errorf("refused calls reached the upstream through serve, by corpus class:%s", b.String())
	})
	corpus := upstreamtest.Corpus()
	forEachBypassProxy(t, func(t *testing.T, config string, b bypassBackend, addr string, up *upstreamtest.Server, tr *http.Transport) {
		for _, c := range corpus {
			if c.Opaque { // on the wire the same as without: only a RoundTripper sees the difference
				continue
			}
			t.Run(c.Name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				status, body, got := bypassSend(t, ctx, addr, c, up, tr)
				bypasses := b.oracle.Bypasses(ctx, got)
				for _, bp := range bypasses {
					t.Errorf("%s\n  the proxy answered the client: %d %s", bp, status, bytes.TrimSpace(body))
				}
				if len(bypasses) > 0 {
					mu.Lock()
					byClass[c.Class] = append(byClass[c.Class], config+": "+c.Name)
					mu.Unlock()
				}
			})
		}
	})
}

// TestServeBypassControls: each tenant's allowed call goes through the proxy and is executed exactly once
// with the very bytes sent; a GET of the cluster's details and a DELETE with a body pass through.
func TestServeBypassControls(t *testing.T) {
	t.Parallel()
	forEachBypassProxy(t, func(t *testing.T, config string, b bypassBackend, addr string, up *upstreamtest.Server, tr *http.Transport) {
		for _, c := range upstreamtest.Controls() {
			t.Run(c.Name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				status, body, got := bypassSend(t, ctx, addr, c.Case, up, tr)
				for _, bp := range b.oracle.Bypasses(ctx, got) {
					t.Error(bp)
				}
				if err := c.Check(got, status, body); err != nil {
					t.Error(err)
				}
			})
		}
	})
}
