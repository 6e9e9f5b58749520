package server

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// perClientListener caps the connections one client address may hold open. Without it, one client can open
// as many connections as the process has file descriptors and keep each busy at the edge of every timeout;
// the in-flight limit cannot help, since a connection that trickles its request holds no slot.
//
// A connection over the cap is closed as soon as it is accepted, before anything is read from it: turning it
// away costs the server nothing but the accept. Clients are told apart by IP address only (ports are the
// client's to choose), and a connection whose remote address is not an IP (a Unix socket) is not counted,
// since there is no client to tell it apart by.
type perClientListener struct {
	net.Listener
	max     int
	metrics *metrics // nil: none

	mu   sync.Mutex
	open map[netip.Addr]int
}

func limitPerClient(ln net.Listener, max int, m *metrics) *perClientListener {
	return &perClientListener{Listener: ln, max: max, metrics: m, open: make(map[netip.Addr]int)}
}

// Accept returns the next connection within its client's cap. Connections over it are closed here and
// never returned: an error would make http.Server back off (or stop serving) for every client.
func (l *perClientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, ok := remoteIP(c)
		if !ok {
			return c, nil
		}
		l.mu.Lock()
		if l.open[ap] >= l.max {
			l.mu.Unlock()
			if l.metrics != nil {
				l.metrics.connsRefused.Inc()
			}
			c.Close()
			continue
		}
		l.open[ap]++
		l.mu.Unlock()
		if l.metrics != nil {
			l.metrics.connsOpen.Inc()
		}
		return &countedConn{Conn: c, release: func() { l.release(ap) }}, nil
	}
}

func (l *perClientListener) release(ip netip.Addr) {
	l.mu.Lock()
	if l.open[ip] <= 1 {
		delete(l.open, ip) // or the map keeps every address that ever connected
	} else {
		l.open[ip]--
	}
	l.mu.Unlock()
	if l.metrics != nil {
		l.metrics.connsOpen.Dec()
	}
}

// openFrom is how many connections ip holds open.
func (l *perClientListener) openFrom(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

func remoteIP(c net.Conn) (netip.Addr, bool) {
	tcp, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	// ::ffff:10.0.0.1 and 10.0.0.1 are one client, whichever socket family accepted it.
	return ip.Unmap(), ok
}

// countedConn gives its slot back when it is closed, once, however often Close is called (http.Server and
// a hijacker may both close it).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps what embedding net.Conn hides: http.Server half-closes a connection before it closes it
// after an error answer (413, 408) so that the client, still sending, reads the answer instead of a reset.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
