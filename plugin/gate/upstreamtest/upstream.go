package upstreamtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Execution is one (router, reader) reading of a request that the upstream would execute as the encrypt
// call: the path parameters the router took and the encrypt object the reader read.
type Execution struct {
	Router  string
	Reader  string
	Route   Route
	Encrypt Encrypt
}

func (e Execution) String() string {
	name := "absent"
	if e.Encrypt.MasterKeyName != nil {
		name = strconv.Quote(*e.Encrypt.MasterKeyName)
	}
	return fmt.Sprintf("router %s, reader %s: project_id=%q cluster_id=%q crypt_algorithm=%q master_key_id=%q master_key_name=%s",
		e.Router, e.Reader, e.Route.ProjectID, e.Route.ClusterID, e.Encrypt.CryptAlgorithm, e.Encrypt.MasterKeyID, name)
}

// Request is one request the upstream read off a connection.
type Request struct {
	Seq    int // in the order the upstream read requests, from 1
	Conn   int // which connection it came on, from 1
	Method string
	// Target is the request-target exactly as it was on the request line.
	Target string
	Proto  string
	Host   string
	Header http.Header
	// ContentLength is the body's declared length (-1: chunked or unknown).
	ContentLength int64
	// Body is the body as the upstream read it; nil when the upstream left it unread (a request it did not
	// execute), in which case the body's bytes were read as the next request on the connection.
	Body     []byte
	BodyRead bool
	// Smuggled says that the request came out of bytes an earlier request on the connection sent as its
	// body: a second request the client (or the gate) did not know it was sending.
	Smuggled bool
	// Tunnelled says that the request came after the upstream switched the connection to another protocol
	// (101 Switching Protocols: h2c, WebSocket): a tunnel whose bytes nothing in front of the upstream reads.
	// The model reads them as HTTP/1.1, standing for whatever the new protocol carries.
	Tunnelled bool
	// Close says that the request asked for the connection to be closed after it.
	Close bool
	// Executions are every (router, reader) reading under which the upstream would execute the request as
	// the encrypt call; empty when none would.
	Executions []Execution
}

// Executed says whether any router and reader would execute the request as the encrypt call.
func (r Request) Executed() bool { return len(r.Executions) > 0 }

func (r Request) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d (connection %d", r.Seq, r.Conn)
	if r.Smuggled {
		b.WriteString(", smuggled in an earlier request's body")
	}
	if r.Tunnelled {
		b.WriteString(", sent through a protocol switch")
	}
	fmt.Fprintf(&b, ") %s %s %s", r.Method, strconv.Quote(r.Target), r.Proto)
	for _, k := range sortedKeys(r.Header) {
		if k == "Authorization" || k == "X-Auth-Token" {
			continue
		}
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "; %s: %q", k, v)
		}
	}
	if r.BodyRead {
		body := r.Body
		if len(body) > 300 {
			body = append(body[:300:300], "..."...)
		}
		fmt.Fprintf(&b, "; body %q", body)
	} else if r.ContentLength != 0 {
		fmt.Fprintf(&b, "; body of %d bytes left unread", r.ContentLength)
	}
	return b.String()
}

// Option configures an upstream.
type Option func(*core)

// WithRouters replaces the routers (default: Routers()).
func WithRouters(rs ...Router) Option { return func(c *core) { c.routers = rs } }

// WithReaders replaces the body readers (default: Readers()).
func WithReaders(rs ...Reader) Option { return func(c *core) { c.readers = rs } }

// core is what both forms of the upstream share: reading requests off a connection as a naive server does,
// deciding what it would execute, answering, and recording.
type core struct {
	routers []Router
	readers []Reader

	mu       sync.Mutex
	seq      int
	conns    int
	requests []Request
}

func newCore(opts []Option) *core {
	c := &core{routers: Routers(), readers: Readers()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Requests returns what the upstream has read so far.
func (c *core) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Take returns what the upstream has read so far and forgets it.
func (c *core) Take() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.requests
	c.requests = nil
	return out
}

// Executed returns the requests the upstream would have executed as the encrypt call.
func (c *core) Executed() []Request {
	var out []Request
	for _, r := range c.Requests() {
		if r.Executed() {
			out = append(out, r)
		}
	}
	return out
}

func (c *core) newConn() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns++
	return c.conns
}

// serveConn reads requests off br one after another and answers each through answer, until the bytes end,
// a request does not parse, or a request asks for the connection to be closed.
//
// On the wire the upstream is naive: it reads a body only when it routes the request somewhere, and never
// the body of a GET, HEAD, OPTIONS or TRACE, so that the bytes of a body it leaves unread are read as the
// next request. Its record is more thorough than any one server: the executions are worked out from the body
// whatever the wire did (an unread body is peeked at), and a body that one of the modelled servers would
// leave unread (one of its routers does not route the request) is also read as the requests it holds, as
// that server would have read them. A request that asks to upgrade (Upgrade, Connection: upgrade) is
// served and answered 101 Switching Protocols, as by a server that speaks h2c or WebSocket, and what
// follows on the connection is read as tunnelled requests.
func (c *core) serveConn(conn int, br *bufio.Reader, st connState, answer func(*http.Response) error) {
	for {
		req, err := readRequest(br)
		if err != nil {
			return
		}
		rec := Request{Conn: conn, Method: req.Method, Target: req.RequestURI, Proto: req.Proto, Host: req.Host,
			Header: req.Header.Clone(), ContentLength: req.ContentLength, Smuggled: st.smuggled, Tunnelled: st.tunnelled, Close: req.Close}
		var routes []namedRoute
		for _, r := range c.routers {
			if rt, ok := r.Route(req); ok {
				routes = append(routes, namedRoute{r.Name, rt})
			}
		}
		getLike := false
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace} {
			getLike = getLike || strings.EqualFold(req.Method, m)
		}
		var body []byte
		leftUnread := len(routes) == 0 || getLike
		switch {
		case !leftUnread:
			if body, err = io.ReadAll(req.Body); err != nil {
				c.record(&rec)
				return
			}
			rec.Body, rec.BodyRead = body, true
		case len(routes) > 0 && req.ContentLength > 0 && req.ContentLength <= int64(br.Size()):
			body, _ = br.Peek(int(req.ContentLength)) // a server that does read it would execute it
			body = bytes.Clone(body)
		}
		if len(routes) > 0 {
			for _, rd := range c.readers {
				e, ok := rd.Read(req.Header, body)
				if !ok {
					continue
				}
				for _, rt := range routes {
					rec.Executions = append(rec.Executions, Execution{Router: rt.name, Reader: rd.Name, Route: rt.route, Encrypt: e})
				}
			}
		}
		seq := c.record(&rec)
		resp := response(req, &rec, seq)
		if proto := upgrade(req); proto != "" {
			// As a server that speaks h2c or WebSocket does: the request is served, then the connection
			// carries the other protocol.
			resp = switching(req, proto)
			st.tunnelled = true
		}
		if answer(resp) != nil || req.Close && resp.StatusCode != http.StatusSwitchingProtocols {
			return
		}
		switch {
		case leftUnread && req.ContentLength != 0:
			st.smuggled = true // what follows on this connection was sent as this request's body
		case rec.BodyRead && len(routes) < len(c.routers) && len(body) > 0 && req.ContentLength > 0:
			// A server whose router does not route the request leaves this body unread.
			c.serveConn(conn, bufio.NewReaderSize(bytes.NewReader(body), max(len(body), 16)), connState{smuggled: true, tunnelled: st.tunnelled}, discard)
		}
	}
}

// connState is what the upstream knows of the bytes it reads next on a connection.
type connState struct {
	smuggled  bool // they were sent as the body of an earlier request
	tunnelled bool // the connection switched protocols
}

// upgrade is the protocol the request asks to switch to (Upgrade, with "upgrade" among the Connection
// tokens), "" when none.
func upgrade(req *http.Request) string {
	proto := strings.TrimSpace(req.Header.Get("Upgrade"))
	if proto == "" {
		return ""
	}
	for _, v := range req.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return proto
			}
		}
	}
	return ""
}

func switching(req *http.Request, proto string) *http.Response {
	h := http.Header{}
	h.Set("Upgrade", proto)
	h.Set("Connection", "Upgrade")
	return &http.Response{Status: "101 Switching Protocols", StatusCode: http.StatusSwitchingProtocols, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Request: req}
}

func discard(resp *http.Response) error { return nil }

// maxHead bounds a request's line and header fields.
const maxHead = 64 << 10

// readRequest reads one request off br as http.ReadRequest does, but keeps a request-target that net/url
// cannot parse (an invalid escape, IIS's %uXXXX) as it was sent, instead of refusing the request: some
// servers route such targets.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	head, err := peekHead(br)
	if err != nil {
		return nil, err
	}
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	fields := strings.Split(strings.TrimRight(string(line), "\r"), " ")
	if len(fields) != 3 {
		return http.ReadRequest(br)
	}
	if _, err := url.ParseRequestURI(fields[1]); err == nil {
		return http.ReadRequest(br)
	}
	if _, err := br.Discard(len(head)); err != nil {
		return nil, err
	}
	fixed := append([]byte(fields[0]+" / "+fields[2]+"\r\n"), rest...)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(fixed)))
	if err != nil {
		return nil, err
	}
	req.RequestURI = fields[1]
	switch {
	case len(req.TransferEncoding) > 0:
		req.Body = &chunkedBody{r: httputil.NewChunkedReader(br), br: br}
	case req.ContentLength > 0:
		req.Body = io.NopCloser(io.LimitReader(br, req.ContentLength))
	default:
		req.Body = http.NoBody
	}
	return req, nil
}

// peekHead returns, without consuming them, the bytes of br up to the blank line that ends a request's
// header fields.
func peekHead(br *bufio.Reader) ([]byte, error) {
	n := max(br.Buffered(), 1)
	for {
		b, err := br.Peek(n)
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], nil
		}
		if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
			return b[:i+2], nil
		}
		if err != nil {
			return nil, err
		}
		if n >= maxHead {
			return nil, errors.New("upstreamtest: request header too large")
		}
		n = len(b) + 1
	}
}

// chunkedBody is a chunked body read off a connection, its trailer section consumed at the end.
type chunkedBody struct {
	r  io.Reader
	br *bufio.Reader
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		for {
			line, e := c.br.ReadString('\n')
			if e != nil || strings.TrimRight(line, "\r\n") == "" {
				break
			}
		}
	}
	return n, err
}

func (c *chunkedBody) Close() error { return nil }

type namedRoute struct {
	name  string
	route Route
}

func (c *core) record(r *Request) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	r.Seq = c.seq
	c.requests = append(c.requests, *r)
	return c.seq
}

// response is the upstream's answer: 200 {"job_id"} for an executed call, a small JSON otherwise.
func response(req *http.Request, rec *Request, seq int) *http.Response {
	body := []byte(`{"result": "not an encrypt call"}`)
	if rec.Executed() {
		sum := sha256.Sum256([]byte(strconv.Itoa(seq)))
		body = []byte(`{"job_id": "` + hex.EncodeToString(sum[:16]) + `"}`)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Request-Id", strconv.Itoa(seq))
	return &http.Response{Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Close: req.Close, Request: req}
}

// peekSize bounds the body of a GET-like request that the server peeks at to work out its executions.
const peekSize = 64 << 10

// Server is the upstream as a raw HTTP/1.1 server on a loopback port. It is safe for concurrent use.
type Server struct {
	*core
	// URL is http://127.0.0.1:port.
	URL string

	ln     net.Listener
	wg     sync.WaitGroup
	active atomic.Int64
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

// NewServer starts an upstream on a loopback port.
func NewServer(opts ...Option) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("upstreamtest: listening: %v", err))
	}
	s := &Server{core: newCore(opts), URL: "http://" + ln.Addr().String(), ln: ln, open: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.open[nc] = struct{}{}
		s.active.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				nc.Close()
				s.mu.Lock()
				delete(s.open, nc)
				s.mu.Unlock()
				s.active.Add(-1)
			}()
			bw := bufio.NewWriter(nc)
			s.serveConn(s.newConn(), bufio.NewReaderSize(nc, peekSize), connState{}, func(resp *http.Response) error {
				if err := resp.Write(bw); err != nil {
					return err
				}
				return bw.Flush()
			})
		}()
	}
}

// Active is the number of connections open now.
func (s *Server) Active() int { return int(s.active.Load()) }

// IdleCloser is what Quiesce closes idle connections with: an *http.Transport or *http.Client.
type IdleCloser interface{ CloseIdleConnections() }

// Quiesce waits until every connection to the server is closed, closing the clients' idle connections
// until then, so that every byte sent has been read and recorded (including requests smuggled in bodies,
// which the server reads after it has answered the request that carried them).
func (s *Server) Quiesce(ctx context.Context, clients ...IdleCloser) error {
	for {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		if s.Active() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstreamtest: %d connections still open: %w", s.Active(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// Close stops the server and closes every connection.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for nc := range s.open {
		nc.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// Transport is the upstream as an http.RoundTripper, without a network: it writes each request as
// net/http's Transport would put it on the wire (refusing what that Transport refuses) and serves those
// bytes as Server does, each request on a connection of its own. Bytes left unread after the first request
// (a body the upstream does not read, on a request that did not ask for Connection: close) are read as
// further requests and may be executed; only the first request's answer is returned. It is safe for
// concurrent use.
type Transport struct {
	*core
}

// NewTransport returns the in-process upstream.
func NewTransport(opts ...Option) *Transport { return &Transport{core: newCore(opts)} }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := validRequest(req); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return nil, err
	}
	var first *http.Response
	conn := t.newConn()
	t.serveConn(conn, bufio.NewReaderSize(&wire, max(wire.Len(), 16)), connState{}, func(resp *http.Response) error {
		if first == nil {
			resp.Request = req
			first = resp
		}
		return nil
	})
	if first == nil {
		return nil, errors.New("upstreamtest: the upstream could not read the request and closed the connection")
	}
	if first.StatusCode == http.StatusSwitchingProtocols {
		// As net/http's Transport does: the body is the connection, for the client to speak the new
		// protocol on. What it writes is served when it closes it.
		first.Body = &tunnel{serve: func(b []byte) {
			t.serveConn(conn, bufio.NewReaderSize(bytes.NewReader(b), max(len(b), 16)), connState{tunnelled: true}, discard)
		}}
	}
	return first, nil
}

// tunnel is the writable body of a 101 answer of the in-process upstream.
type tunnel struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	done  bool
	serve func([]byte)
}

func (t *tunnel) Read([]byte) (int, error) { return 0, io.EOF }

func (t *tunnel) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return 0, net.ErrClosed
	}
	return t.buf.Write(p)
}

func (t *tunnel) Close() error {
	t.mu.Lock()
	done := t.done
	t.done = true
	t.mu.Unlock()
	if !done {
		t.serve(t.buf.Bytes())
	}
	return nil
}

// validRequest refuses what net/http's Transport refuses before it writes a request.
func validRequest(req *http.Request) error {
	if req.URL == nil {
		return errors.New("http: nil Request.URL")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("unsupported protocol scheme %q", req.URL.Scheme)
	}
	if req.URL.Host == "" {
		return errors.New("http: no Host in request URL")
	}
	if req.Method != "" && !isToken(req.Method) {
		return fmt.Errorf("net/http: invalid method %q", req.Method)
	}
	for k, vs := range req.Header {
		if !isToken(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7F {
			return false
		}
	}
	return true
}

func sortedKeys(h http.Header) []string { return slices.Sorted(maps.Keys(h)) }
