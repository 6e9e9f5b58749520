package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/server"
)

// TestSlowClients is a slow-loris attack on the real server: 300 connections from one address (127.0.0.2)
// send their headers, then their body a byte every 100 ms. Meanwhile an ordinary request from another
// address (127.0.0.1) must be answered within a second. With the default limits, the per-client cap turns
// most of them away at accept; with the cap raised above 300, all are accepted and trickle at once, more
// than the 256 in-flight slots, and still hold none (their bodies are not read yet), so the ordinary request
// finds one free. It runs for about a second per case; every connection is closed at the end.
func TestSlowClients(t *testing.T) {
	const tricklers = 300
	doc := example(t, "allowed-api-example.json")
	for _, tt := range []struct {
		name      string
		perClient int
		accepted  int // tricklers the server keeps
	}{
		{"default limits", 0, server.DefaultMaxConnsPerClient},
		{"per-client limit above the tricklers", 1000, tricklers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, server.Config{Source: defaultSource(), Backend: regoBackend, MaxConnsPerClient: tt.perClient})
			addr := s.URL[len("http://"):]

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var conns []net.Conn
			defer func() {
				close(stop)
				for _, c := range conns {
					c.Close()
				}
				wg.Wait()
			}()
			dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
			for range tricklers {
				c, err := dialer.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				c.SetDeadline(time.Now().Add(10 * time.Second)) // the test's own bound, whatever the server does
				wg.Go(func() { trickle(c, stop, len(doc)) })
			}

			// Wait until the server holds what it keeps (the scrapes add a connection of their own, from
			// 127.0.0.1), then let the bodies trickle for a while.
			deadline := time.Now().Add(5 * time.Second)
			for metric(t, s.URL, "precheck_http_connections_open", nil) < float64(tt.accepted) ||
				metric(t, s.URL, "precheck_http_connections_refused_total", nil) < float64(tricklers-tt.accepted) {
				if time.Now().After(deadline) {
					t.Fatalf("the server holds %v connections and refused %v, want %d held and %d refused",
						metric(t, s.URL, "precheck_http_connections_open", nil), metric(t, s.URL, "precheck_http_connections_refused_total", nil),
						tt.accepted, tricklers-tt.accepted)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			if got := metric(t, s.URL, "precheck_http_in_flight_requests", nil); got != 0 {
				t.Errorf("%v requests in flight while their bodies trickle, want 0", got)
			}

			client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
			defer client.CloseIdleConnections()
			began := time.Now()
			resp, err := client.Post(s.URL+"/v1/precheck", "application/json", bytes.NewReader(doc))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			latency := time.Since(began)
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) || latency > time.Second {
				t.Fatalf("the ordinary request, after %v: %d %s", latency, resp.StatusCode, body)
			}
			t.Logf("%d tricklers from 127.0.0.2 (%d held, %d refused); the ordinary request was answered in %v",
				tricklers, tt.accepted, tricklers-tt.accepted, latency.Round(time.Microsecond))

			// They were trickling all along: the server still holds them.
			if got := metric(t, s.URL, "precheck_http_connections_open", nil); got < float64(tt.accepted) {
				t.Errorf("the server holds %v connections after the ordinary request, want at least %d", got, tt.accepted)
			}
		})
	}
}

// trickle sends a POST /v1/precheck's headers at once, then its body a byte every 100 ms, until stop or
// until the connection fails (the server closed it).
func trickle(c net.Conn, stop <-chan struct{}, length int) {
	if _, err := fmt.Fprintf(c, "POST /v1/precheck HTTP/1.1\r\nHost: precheck\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", length); err != nil {
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}
}
