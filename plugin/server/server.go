// Package server is `precheck serve`: precheck as an HTTP service, for teams whose tools are not written in
// Go. It answers decisions (POST /v1/precheck), stands in front of the DWS API as the gate (a reverse proxy
// for POST /v2/{project_id}/clusters/{cluster_id}/encrypt, with every other call passed through), and reports
// its health (/healthz, /readyz), its metrics (/metrics, Prometheus) and every decision (a JSON-lines log).
//
// Its policy comes from a Source (files on disk, or an OPA bundle service) and is reloaded on change and on
// Reload (SIGHUP); a reload that fails keeps the policy that was serving, and is reported in the log, the
// metrics and /readyz.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/policy"
)

// Codes of the errors the service answers itself, in the API's error shape.
const (
	CodeMalformed   = "PRECHECK-SERVE-001" // 400: the input document is not one
	CodeTooLarge    = "PRECHECK-SERVE-002" // 413: the body is over the limit
	CodeBusy        = "PRECHECK-SERVE-003" // 503: too many requests in flight
	CodeNotReady    = "PRECHECK-SERVE-004" // 503: no policy loaded yet
	CodeEngine      = "PRECHECK-SERVE-005" // 500: the policy could not be evaluated
	CodeUpstream    = "PRECHECK-SERVE-006" // 502: the upstream API could not be reached
	CodeBodyTimeout = "PRECHECK-SERVE-007" // 408: the body did not arrive within BodyReadTimeout
)

// The defaults of the Config's limits.
const (
	DefaultMaxInFlight       = 256
	DefaultMaxConnsPerClient = 64
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultBodyReadTimeout   = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
)

// Config configures a Server. Source and Backend are required.
type Config struct {
	Source  Source
	Backend func() policy.Backend
	Options []policy.Option // for the engine, e.g. policy.WithClock

	// Upstream, when set, is the DWS API the gate forwards allowed calls (and every other call) to.
	Upstream *url.URL
	// Transport carries forwarded calls (default: http.DefaultTransport's settings, with WriteTimeout as
	// the longest wait for the upstream's answer, so that an upstream that never answers frees its slot).
	Transport http.RoundTripper
	// Facts are what the gate decides proxied calls on (default: none, so they are refused as unknown).
	Facts facts.Provider
	// FailOpen forwards a proxied call whose facts cannot be gathered, if the request itself is sound (see
	// gate.WithFailOpen); what the caller sends and a policy that cannot be evaluated still refuse.
	FailOpen bool

	DecisionLog io.Writer    // JSON lines; nil: none
	Logger      *slog.Logger // default: discard

	// A request's body is read in full, within MaxBodyBytes (413 past it) and BodyReadTimeout (408 past
	// it), before the request takes one of the MaxInFlight slots (503 when none is free): a client that
	// sends its body slowly holds a connection, never a slot. MaxConnsPerClient caps the connections one
	// client IP address may hold open (more are closed as soon as they are accepted); behind a load
	// balancer every client has the balancer's address, so raise it there.
	MaxBodyBytes      int64         // default 1 MiB
	MaxInFlight       int           // default DefaultMaxInFlight
	MaxConnsPerClient int           // default DefaultMaxConnsPerClient
	ReadHeaderTimeout time.Duration // default DefaultReadHeaderTimeout
	BodyReadTimeout   time.Duration // default DefaultBodyReadTimeout
	// ReadTimeout bounds reading a whole request (headers and body) on the routes that do not buffer
	// their body (health, readiness, metrics); default DefaultReadTimeout.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration // default DefaultWriteTimeout
}

// Server serves precheck over HTTP.
type Server struct {
	cfg     Config
	metrics *metrics
	log     *decisionLog
	logger  *slog.Logger
	handler http.Handler
	slots   chan struct{}

	engine atomic.Pointer[policy.Engine]
	gate   atomic.Pointer[gate.Gate]

	reloadMu   sync.Mutex
	lastReload atomic.Pointer[reloadStatus]
}

type reloadStatus struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// New prepares a Server and loads its policy. A policy that fails to load is an error, except from a bundle
// service, which may not be up yet: the server then starts unready and keeps asking.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Source == nil || cfg.Backend == nil {
		return nil, errors.New("server: Config.Source and Config.Backend are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = int64(policy.DefaultLimits.MaxBytes)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxConnsPerClient <= 0 {
		cfg.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = cfg.WriteTimeout // past it the answer could not be written anyway
		cfg.Transport = t
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		metrics: newMetrics(),
		log:     newDecisionLog(cfg.DecisionLog),
		logger:  cfg.Logger,
		slots:   make(chan struct{}, cfg.MaxInFlight),
	}
	s.metrics.watchEngine(func() (policy.State, bool) {
		if eng := s.engine.Load(); eng != nil {
			return eng.State(), true
		}
		return policy.State{}, false
	})
	if err := s.Reload(ctx); err != nil {
		if _, remote := cfg.Source.(*BundleService); !remote {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.Handle("POST /v1/precheck", s.limit(http.HandlerFunc(s.decide), false))
	if cfg.Upstream != nil {
		mux.Handle("/", s.limit(s.proxy(), true))
	}
	s.handler = mux
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops accepting, and lets the requests
// in flight finish (for at most drain). It holds each client address to MaxConnsPerClient connections.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	ln = limitPerClient(ln, s.cfg.MaxConnsPerClient, s.metrics)
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.cfg.Source.Watch(watchCtx, func() {
		if err := s.Reload(watchCtx); err != nil {
			// A bundle service's answer is quoted in the error: text from elsewhere, redacted like the upstream's.
			s.logger.Warn("policy reload failed; the last good policy keeps serving", "source", s.cfg.Source.String(), "error", redact.Text(err.Error(), nil))
		}
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if eng := s.engine.Load(); eng != nil {
		eng.Close(context.WithoutCancel(ctx))
	}
	return err
}

// Reload loads the policy from the source and, if it changed, makes it the one that serves. A policy that
// fails to load or prepare leaves the serving one in place; the failure is returned, counted and shown by
// /readyz until a reload succeeds.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.reload(ctx)
	status := &reloadStatus{At: time.Now()}
	if err != nil {
		status.Error = redact.Text(err.Error(), nil)
		s.metrics.reloads.WithLabelValues("failure").Inc()
	}
	s.lastReload.Store(status)
	return err
}

func (s *Server) reload(ctx context.Context) error {
	p, err := s.cfg.Source.Load(ctx)
	if err != nil {
		return err
	}
	eng := s.engine.Load()
	if eng != nil && eng.Policy().Revision() == p.Revision() {
		// The revision is the manifest's word, and a manifest may keep it for new rules or data: only
		// the content says that nothing changed.
		if eng.Policy().ContentDigest() == p.ContentDigest() {
			s.metrics.reloads.WithLabelValues("unchanged").Inc()
			return nil
		}
		s.logger.Warn("the policy changed but kept its revision; loading it all the same", "source", s.cfg.Source.String(),
			"revision", p.Revision(), "content", p.ContentDigest(), "previous_content", eng.Policy().ContentDigest())
	}
	old := ""
	if eng == nil {
		eng, err = policy.New(ctx, p, append(s.cfg.Options, policy.WithBackend(s.cfg.Backend()))...)
		if err != nil {
			return err
		}
		s.engine.Store(eng)
		s.gate.Store(gate.New(s.cfg.Transport, eng, s.gateOptions()...))
	} else {
		old = eng.Policy().Revision()
		if err := eng.Reload(ctx, p); err != nil {
			return err
		}
		s.metrics.revision.DeleteLabelValues(old)
	}
	s.metrics.revision.WithLabelValues(p.Revision()).Set(1)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.logger.Info("policy loaded", "source", s.cfg.Source.String(), "revision", p.Revision(), "previous", old)
	return nil
}

func (s *Server) gateOptions() []gate.Option {
	opts := []gate.Option{gate.WithObserver(s.observeGate)}
	if s.cfg.Facts != nil {
		opts = append(opts, gate.WithFacts(s.cfg.Facts))
	}
	if s.cfg.FailOpen {
		opts = append(opts, gate.WithFailOpen())
	}
	return opts
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	body := struct {
		Ready    bool   `json:"ready"`
		Source   string `json:"source"`
		Revision string `json:"revision,omitempty"`
		Engine   string `json:"engine,omitempty"`
		// EngineState is how the engine evaluates: for the wasm engine, its code (fast or interruptible)
		// and whether the watchdog switched it (degraded, with when and why). A degraded engine is still
		// ready: it decides, more slowly.
		EngineState *policy.State `json:"engine_state,omitempty"`
		LastReload  *reloadStatus `json:"last_reload,omitempty"`
	}{Source: s.cfg.Source.String(), LastReload: s.lastReload.Load()}
	status := http.StatusServiceUnavailable
	if eng := s.engine.Load(); eng != nil {
		state := eng.State()
		body.Ready, body.Revision, body.Engine, body.EngineState = true, eng.Policy().Revision(), eng.Backend(), &state
		status = http.StatusOK
	}
	writeJSON(w, status, body)
}

// limit reads the request's body in full, then serves it within MaxInFlight. The body is read first, under
// its own deadline, because a slot held while a client trickles its body is a slot no one else can use: a
// few hundred slow clients would lock every decision and every proxied call out. The handler (and through
// the proxy, the gate) gets the buffered body. With early, the handler may free the slot before it returns
// (releaseSlot): the proxy does once the answer is in, before copying it to a client that may read slowly.
func (s *Server) limit(next http.Handler, early bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			var ok bool
			if body, ok = s.readBody(w, r); !ok {
				return
			}
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.metrics.rejected.WithLabelValues("busy").Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, CodeBusy, fmt.Sprintf("more than %d requests are in flight; retry", s.cfg.MaxInFlight))
			return
		}
		s.metrics.inFlight.Inc()
		held := &slot{s: s}
		defer held.release()
		if early || body != nil {
			ctx := r.Context()
			if early {
				ctx = context.WithValue(ctx, slotKey{}, held)
			}
			r = r.WithContext(ctx) // a copy: the server's own request keeps its own body
			if body != nil {
				r.Body = &bufferedBody{Reader: bytes.NewReader(body), data: body}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// slot is one request's place among MaxInFlight, released once.
type slot struct {
	s    *Server
	done atomic.Bool
}

func (h *slot) release() {
	if h.done.CompareAndSwap(false, true) {
		h.s.metrics.inFlight.Dec()
		<-h.s.slots
	}
}

// slotKey holds a request's *slot in its context, for releaseSlot.
type slotKey struct{}

// releaseSlot frees the slot of the request r derives from, if its handler may (see limit). The slot bounds
// the facts, the policy and the upstream call; a client that reads a large answer slowly must not hold it
// while the answer is copied.
func releaseSlot(r *http.Request) {
	if r == nil {
		return
	}
	if held, ok := r.Context().Value(slotKey{}).(*slot); ok {
		held.release()
	}
}

// readBody reads r's body within MaxBodyBytes and BodyReadTimeout, or answers the request itself (413, 408,
// 400) and returns false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// Only a body that is still to be read gets the deadline: net/http clears the connection's read deadline
	// once the body is at its end, so that it can watch for the client going away while the handler runs. A
	// handler given another ResponseWriter (a test's recorder) cannot set one: its server's timeouts apply.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return body, true
	case errors.As(err, &tooLarge):
		s.metrics.rejected.WithLabelValues("too_large").Inc()
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the request body is over the limit of %d bytes", tooLarge.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline is left in place: the rest of the body is never read, and the connection closes.
		s.metrics.rejected.WithLabelValues("body_timeout").Inc()
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, CodeBodyTimeout, fmt.Sprintf("the request body did not arrive within %v", s.cfg.BodyReadTimeout))
	default:
		// Not err's text: it quotes the caller's bytes (a malformed trailer line, which may hold a token).
		s.metrics.rejected.WithLabelValues("malformed").Inc()
		writeError(w, http.StatusBadRequest, CodeMalformed, "the request body could not be read: its framing (chunked encoding or trailers) is malformed")
	}
	return nil, false
}

// decide answers POST /v1/precheck: an input document in, the decision out.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	eng := s.engine.Load()
	if eng == nil {
		s.metrics.rejected.WithLabelValues("not_ready").Inc()
		writeError(w, http.StatusServiceUnavailable, CodeNotReady, errNotReady.Error())
		return
	}
	body := bodyOf(r)
	id := newID()
	// OPA's clients send {"input": <document>}; precheck's send the document. Either is read as strictly.
	doc, err := policy.ReadEnvelope(body, eng.Limits())
	if err != nil { // an *InputError: the caller's document, not the policy, is at fault
		s.metrics.rejected.WithLabelValues("malformed").Inc()
		writeError(w, http.StatusBadRequest, CodeMalformed, err.Error())
		return
	}
	d, by, err := eng.CheckDocumentWithPolicy(r.Context(), doc)
	var inErr *policy.InputError
	if errors.As(err, &inErr) {
		s.metrics.rejected.WithLabelValues("malformed").Inc()
		writeError(w, http.StatusBadRequest, CodeMalformed, err.Error())
		return
	}
	latency := time.Since(start)
	s.record("api", eng, result(d, err), d, latency)
	s.logAPI(id, start, eng, by, doc, d, err, latency)
	if err != nil {
		msg := redact.Text(err.Error(), r.Header) // it names the policy's source, and may quote a host's error
		s.logger.Error("evaluating the policy failed", "decision_id", id, "error", msg)
		writeError(w, http.StatusInternalServerError, CodeEngine, "the policy could not be evaluated: "+msg)
		return
	}
	w.Header().Set("X-Decision-Id", id)
	writeJSON(w, http.StatusOK, d)
}

// logAPI writes the decision log's line for a /v1/precheck decision. The identifiers are the ones the
// reading of the document found (no second parse); the digest, one hash of the document, is worked out only
// when there is a log.
func (s *Server) logAPI(id string, start time.Time, eng *policy.Engine, by *policy.Policy, doc *policy.Document, d *policy.Decision, err error, latency time.Duration) {
	if s.log == nil {
		return
	}
	if by == nil { // the engine was closed before it could decide
		by = eng.Policy()
	}
	entry := &logEntry{DecisionID: id, Time: start, Endpoint: "api", PolicyRevision: by.Revision(), Engine: eng.Backend(),
		InputDigest: digest(doc.JSON()), Result: result(d, err), LatencyMS: ms(latency), Violations: []string{}, Warnings: []string{}}
	entry.ProjectID, entry.ClusterID = doc.RequestIDs()
	if err != nil {
		entry.Error = redact.Text(err.Error(), nil)
	} else {
		entry.Violations, entry.Warnings = codesOf(d.Violations), codesOf(d.Warnings)
	}
	s.log.write(entry)
}

// proxy is the gate as a reverse proxy: the encrypt call is checked by the gate (allowed: forwarded
// untouched; refused: answered in the API's error shape), every other call passes through.
func (s *Server) proxy() http.Handler {
	target := s.cfg.Upstream
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The client signed the request for the host it sent it to; keep it, or the signature breaks.
			pr.Out.Host = pr.In.Host
		},
		Transport: roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			g := s.gate.Load()
			if g == nil {
				return nil, errNotReady
			}
			return g.RoundTrip(req)
		}),
		ModifyResponse: func(resp *http.Response) error {
			releaseSlot(resp.Request)
			return nil
		},
		// The transport's errors quote what the upstream answered (a malformed status line is quoted
		// whole), and an upstream may echo the caller's credentials: redacted before they go anywhere.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errNotReady) {
				writeError(w, http.StatusServiceUnavailable, CodeNotReady, err.Error())
				return
			}
			msg := redact.Text(err.Error(), r.Header)
			s.logger.Warn("proxy", "path", r.URL.Path, "error", msg)
			writeError(w, http.StatusBadGateway, CodeUpstream, "the upstream API could not be reached: "+msg)
		},
		ErrorLog: log.New(proxyLog{s.logger}, "", 0),
	}
	return rp
}

// proxyLog takes what ReverseProxy logs by itself (a response body that broke off midway, with the
// transport's error) to the logger, redacted. The request is not known there, so only redact's patterns
// apply.
type proxyLog struct{ logger *slog.Logger }

func (l proxyLog) Write(p []byte) (int, error) {
	l.logger.Warn("proxy", "error", redact.Text(strings.TrimSpace(string(p)), nil))
	return len(p), nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// observeGate records a proxied call the gate checked.
func (s *Server) observeGate(ev gate.Event) {
	eng := s.engine.Load()
	// The failure may quote the facts API (or, from another build of the gate, the upstream). The event
	// carries no header, so redact's patterns are the net here.
	failure := redact.Text(ev.Failure, nil)
	var err error
	if failure != "" {
		err = errors.New(failure)
	}
	res := result(ev.Decision, err)
	if ev.Refused { // the caller's doing: kept apart from precheck's own failures, which "error" counts
		res = "refused"
	}
	s.record("gate", eng, res, ev.Decision, ev.Latency)
	forwarded := ev.Forwarded
	revision := ev.PolicyRevision
	if revision == "" { // the gate refused the call before any policy decided
		revision = eng.Policy().Revision()
	}
	entry := &logEntry{DecisionID: ev.ID, Time: ev.Time, Endpoint: "gate", PolicyRevision: revision, Engine: eng.Backend(),
		InputDigest: ev.InputDigest, ProjectID: ev.ProjectID, ClusterID: ev.ClusterID, Result: res,
		Error: failure, Forwarded: &forwarded, LatencyMS: ms(ev.Latency), Violations: []string{}, Warnings: []string{}}
	if ev.Decision != nil {
		entry.Violations, entry.Warnings = codesOf(ev.Decision.Violations), codesOf(ev.Decision.Warnings)
	}
	s.log.write(entry)
}

func (s *Server) record(endpoint string, eng *policy.Engine, res string, d *policy.Decision, latency time.Duration) {
	s.metrics.decisions.WithLabelValues(res, eng.Backend(), endpoint).Inc()
	s.metrics.latency.WithLabelValues(eng.Backend(), endpoint).Observe(latency.Seconds())
	if d != nil {
		for _, v := range d.Violations {
			s.metrics.violations.WithLabelValues(v.Code).Inc()
		}
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	var out [len("sha256:") + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[len("sha256:"):], sum[:])
	return string(out[:])
}

// bufferedBody is a request body limit has read in full: a handler takes the bytes without copying them.
type bufferedBody struct {
	*bytes.Reader
	data []byte
}

func (*bufferedBody) Close() error { return nil }

// bodyOf returns the body of a request limit passed on.
func bodyOf(r *http.Request) []byte {
	if b, ok := r.Body.(*bufferedBody); ok {
		return b.data
	}
	body, _ := io.ReadAll(r.Body)
	return body
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeJSON answers with v as JSON, in one write with its length: encoded into a pooled buffer first, so
// that the answer is neither chunked nor allocated anew per request.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer jsonBuffers.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var (
	jsonBuffers     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	contentTypeJSON = []string{"application/json"}
)

// writeError answers in the API's error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "error_msg": msg})
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
