package server

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var (
	client1 = netip.MustParseAddr("127.0.0.1")
	client2 = netip.MustParseAddr("127.0.0.2") // Linux routes all of 127/8 to loopback
)

// acceptAll hands every connection l accepts to the channel, until l is closed.
func acceptAll(l net.Listener) <-chan net.Conn {
	out := make(chan net.Conn, 64)
	go func() {
		defer close(out)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			out <- c
		}
	}()
	return out
}

func dialFrom(t testing.TB, from netip.Addr, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func TestPerClientListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	l := limitPerClient(inner, 2, m)
	defer l.Close()
	accepted := acceptAll(l)
	addr := inner.Addr().String()

	dialFrom(t, client1, addr)
	dialFrom(t, client1, addr)
	s1, s2 := next(t, accepted), next(t, accepted)

	// The third from the same address is over the limit: closed before anything is read or written.
	c3 := dialFrom(t, client1, addr)
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c3.Read(make([]byte, 1)); n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		t.Fatalf("a connection over the limit: read %d, %v", n, err)
	}
	if got := value(m.connsRefused); got != 1 {
		t.Errorf("refused connections counted: %v", got)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the limit was accepted: %v", c.RemoteAddr())
	default:
	}

	// Another client has a limit of its own.
	dialFrom(t, client2, addr)
	s4 := next(t, accepted)
	if got := s4.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("accepted %s, want 127.0.0.2", got)
	}

	// A connection closed (twice) gives back its place, once.
	s1.Close()
	s1.Close()
	if got := l.openFrom(client1); got != 1 {
		t.Fatalf("127.0.0.1 holds %d connections after one of 2 was closed twice, want 1", got)
	}
	dialFrom(t, client1, addr)
	s5 := next(t, accepted)
	if got := value(m.connsOpen); got != 3 {
		t.Errorf("open connections: %v, want 3", got)
	}

	for _, c := range []net.Conn{s2, s4, s5} {
		c.Close()
	}
	l.mu.Lock()
	left := len(l.open)
	l.mu.Unlock()
	if left != 0 || value(m.connsOpen) != 0 {
		t.Errorf("after every connection closed: %d addresses counted, %v open", left, value(m.connsOpen))
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// TestPerClientListenerConcurrent dials, accepts and closes from many goroutines at once (run it under
// -race): no client ever holds more than the limit, and every count comes back to zero.
func TestPerClientListenerConcurrent(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const limit, dialers, dials = 4, 8, 25
	m := newMetrics()
	l := limitPerClient(inner, limit, m)
	defer l.Close()
	addr := inner.Addr().String()

	var acceptedN atomic.Int64
	var over atomic.Int64
	var closers sync.WaitGroup
	accepted := acceptAll(l)
	go func() {
		for c := range accepted {
			acceptedN.Add(1)
			ip, _ := remoteIP(c)
			if l.openFrom(ip) > limit {
				over.Add(1)
			}
			// http.Server and a hijacker may both close a connection, at once.
			closers.Add(2)
			for range 2 {
				go func() {
					defer closers.Done()
					time.Sleep(time.Millisecond)
					c.Close()
				}()
			}
		}
	}()

	var dialing sync.WaitGroup
	for i := range dialers {
		from := []netip.Addr{client1, client2}[i%2]
		dialing.Go(func() {
			for range dials {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		})
	}
	dialing.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for acceptedN.Load()+int64(value(m.connsRefused)) < dialers*dials {
		if time.Now().After(deadline) {
			t.Fatalf("%d accepted + %v refused of %d", acceptedN.Load(), value(m.connsRefused), dialers*dials)
		}
		time.Sleep(5 * time.Millisecond)
	}
	closers.Wait()
	if over.Load() != 0 {
		t.Errorf("%d times a client held more than %d connections", over.Load(), limit)
	}
	l.mu.Lock()
	left := len(l.open)
	l.mu.Unlock()
	if left != 0 || value(m.connsOpen) != 0 {
		t.Errorf("after every connection closed: %d addresses counted, %v open", left, value(m.connsOpen))
	}
}

// TestPerClientListenerUnix: a connection with no IP address has no client to count it against.
func TestPerClientListenerUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Skip(err)
	}
	l := limitPerClient(inner, 1, nil)
	defer l.Close()
	accepted := acceptAll(l)
	for range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next(t, accepted).Close()
	}
}

// value reads a counter's or a gauge's value.
func value(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	return pb.GetCounter().GetValue() + pb.GetGauge().GetValue()
}
