// Package gate puts precheck in front of the DWS "convert to an encrypted cluster" call: an
// http.RoundTripper that wraps the transport of any HTTP client, the official Huawei Cloud Go SDK's
// included. It recognises POST /v2/{project_id}/clusters/{cluster_id}/encrypt (any host, any path prefix,
// the path read as servers read it), gathers facts, decides, and either forwards the call untouched or
// answers it itself, in the API's error shape, so that the SDK surfaces the refusal as an ordinary service
// error. A refused call never reaches the server.
//
//	engine, _ := policy.New(ctx, p)
//	g := gate.New(http.DefaultTransport, engine, gate.WithFacts(facts.Cached(provider, 30*time.Second)))
//	client := &http.Client{Transport: g}   // or the SDK's HttpConfig.WithHttpTransport(g)
//
// The gate decides on one reading of the call, the one every reasonable server shares, and refuses what it
// cannot read so: a path that is the encrypt call only as some servers read it, another method on that
// path, method-override and URL-rewrite headers, a body that is not exactly one UTF-8 JSON document. Every
// other request passes through, carrying at most its own body (none on GET, HEAD, OPTIONS, TRACE), on an
// upstream connection that is closed after it when it has one.
//
// Gathering facts or deciding can fail; the gate then refuses the call (fails closed). WithFailOpen lets
// the call through when only the facts failed, and only if the request itself is not refused. Each call it
// checks is reported to an optional observer; no header, and so no credential, is ever part of what the
// gate logs or reports, and text from elsewhere (a facts API's error, a transport's) is redacted first.
package gate

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
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/policy"
)

// Codes of the refusals the gate makes itself. They are not Rego rules, so they are listed here and in the
// README rather than in the rule catalog.
const (
	// CodeFactsFailed (503): the facts could not be gathered (the provider failed or timed out).
	CodeFactsFailed = "PRECHECK-GATE-001"
	// CodeCheckFailed (503): the policy could not be evaluated, or the facts make no valid document.
	CodeCheckFailed = "PRECHECK-GATE-002"
	// CodeBodyRejected (400): the encrypt call's body is not one UTF-8 JSON document the gate can read as
	// every server would: unreadable, too large, another Content-Type, charset or Content-Encoding, or
	// refused by policy.NewDocument (a member twice, a case variant of an API member...).
	CodeBodyRejected = "PRECHECK-GATE-003"
	// CodeRouteRefused (400): a request the gate cannot read as one call on one route: a path that is the
	// encrypt call as some servers read it and not (or with other IDs) as others do, a path that may be
	// the call and cannot be decoded, or any request with a method-override or URL-rewrite header or asking
	// for a protocol upgrade.
	CodeRouteRefused = "PRECHECK-GATE-004"
	// CodeMethodRefused (405): the encrypt call's path with a method other than POST, which a server or a
	// framework in front of it might still route to the call.
	CodeMethodRefused = "PRECHECK-GATE-005"
	// CodeUnexpectedBody (400): a passed-through GET, HEAD, OPTIONS or TRACE with a body, which a server
	// that expects none may read as a second request.
	CodeUnexpectedBody = "PRECHECK-GATE-006"
)

// Event is what the gate reports about one call it checked or refused. It holds no header and no credential.
type Event struct {
	ID        string // also the X-Request-Id of a refusal the gate answers
	Time      time.Time
	Host      string
	Path      string
	ProjectID string
	ClusterID string
	// InputDigest identifies the input document decided on ("sha256:..."), without revealing it.
	InputDigest string
	// Decision is the policy's decision; nil when none was made (the request was refused before, or the
	// facts or the evaluation failed).
	Decision *policy.Decision
	// PolicyRevision is the revision of the policy that decided, when the checker says which did (a
	// *policy.Engine does: its Policy may name the next one already, after a Reload during the decision).
	PolicyRevision string
	// Forwarded says whether the call went on to the server.
	Forwarded bool
	// Failure says what went wrong when the gate refused without a decision, or the facts failed ("" otherwise).
	Failure string
	// Refused says that the gate refused the call for its form (method, path, headers or body) before any
	// decision: the caller's doing, where a Failure without it is precheck's (the facts or the policy).
	Refused bool
	// Latency is the time the gate took to decide (facts and policy), not the server's.
	Latency time.Duration
}

// Gate is the http.RoundTripper. It is safe for concurrent use.
type Gate struct {
	next     http.RoundTripper
	checker  plugin.Checker
	facts    facts.Provider
	failOpen bool
	observe  func(Event)
	logger   *slog.Logger
	limits   policy.Limits
	timeout  time.Duration
}

// Option configures a Gate.
type Option func(*Gate)

// WithFacts sets where the facts come from (default: none, so the policy knows nothing beyond the request,
// and refuses).
func WithFacts(p facts.Provider) Option { return func(g *Gate) { g.facts = p } }

// WithFailOpen makes the gate forward the call when its facts cannot be gathered (the provider fails or
// times out), as long as the request itself is sound: the policy is still evaluated, on the request without
// facts, and the call goes on only if every violation is about a fact (cluster, key, tenant). A request the
// policy refuses, a body or path the gate cannot read, and an evaluation that fails are refused all the same,
// and so is a facts failure the call causes (facts.ErrNotFound: a cluster or key that does not exist or is
// not the caller's, another project's IDs). dwsapi counts every 4xx answer but 408 and 429 as the call's
// doing, so credentials the API refuses make such a gate fail closed too.
func WithFailOpen() Option { return func(g *Gate) { g.failOpen = true } }

// WithObserver reports every checked call, for logs and metrics. It is called synchronously, before the call
// is forwarded or answered; keep it quick.
func WithObserver(f func(Event)) Option { return func(g *Gate) { g.observe = f } }

// WithTimeout bounds the time to gather the facts (default 10s). Past it the gate cannot decide, and refuses
// (or, WithFailOpen, decides without facts). The SDK sends requests without a deadline of their own, so this
// is what stops a hung facts API from hanging the call.
func WithTimeout(d time.Duration) Option { return func(g *Gate) { g.timeout = d } }

// WithLogger logs one line per checked call (never a header).
func WithLogger(l *slog.Logger) Option { return func(g *Gate) { g.logger = l } }

// WithLimits sets the limits on the input document (default policy.DefaultLimits). The body may take half
// of MaxBytes; the facts take the rest.
func WithLimits(l policy.Limits) Option { return func(g *Gate) { g.limits = l } }

// New wraps next (http.DefaultTransport when nil) with the gate, deciding with checker: a *policy.Engine or
// a *plugin.Chain.
func New(next http.RoundTripper, checker plugin.Checker, opts ...Option) *Gate {
	if next == nil {
		next = http.DefaultTransport
	}
	g := &Gate{next: next, checker: checker, facts: facts.Func(noFacts), limits: policy.DefaultLimits, timeout: 10 * time.Second}
	for _, o := range opts {
		o(g)
	}
	return g
}

func noFacts(context.Context, facts.Request) (*facts.Facts, error) { return &facts.Facts{}, nil }

func (g *Gate) maxBody() int { return g.limits.MaxBytes / 2 }

// RoundTrip checks the encrypt call, refuses what could be read as it or smuggle it, and passes every
// other request through.
func (g *Gate) RoundTrip(req *http.Request) (*http.Response, error) {
	if name := rewriteHeader(req.Header); name != "" {
		return g.refuseUnread(req, route{}, http.StatusBadRequest, CodeRouteRefused,
			"precheck refuses requests with a "+name+" header: a front end may route them as another call than the one they name, and the DWS API has no use for it")
	}
	if what := upgrade(req.Header); what != "" {
		return g.refuseUnread(req, route{}, http.StatusBadRequest, CodeRouteRefused,
			"precheck refuses a protocol upgrade ("+what+"): what is sent after the switch would reach the API unread, and the DWS API has no use for it")
	}
	if strings.EqualFold(req.Method, http.MethodConnect) {
		return g.refuseUnread(req, route{}, http.StatusBadRequest, CodeRouteRefused,
			"precheck refuses the CONNECT method: it makes the connection a tunnel whose bytes reach the other end unread, and the DWS API has no use for it")
	}
	r := readRoute(req.URL)
	switch {
	case r.unreadable != "":
		return g.refuseUnread(req, r, http.StatusBadRequest, CodeRouteRefused,
			"precheck cannot tell which call this is, so it was not made: "+r.unreadable+"; send the plain path /v2/{project_id}/clusters/{cluster_id}/encrypt")
	case !r.guarded:
		return g.passThrough(req)
	case req.Method != http.MethodPost:
		resp, err := g.refuseUnread(req, r, http.StatusMethodNotAllowed, CodeMethodRefused,
			fmt.Sprintf("the encrypt call's path takes only POST, not %q", req.Method))
		if resp != nil {
			resp.Header.Set("Allow", http.MethodPost)
		}
		return resp, err
	}
	return g.check(req, r)
}

// overrideHeaders make some frameworks and proxies route a request by a method or URL other than its
// request line's, past anything that read the request line.
var overrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL"}

func rewriteHeader(h http.Header) string {
	for _, name := range overrideHeaders {
		if headerValues(h, name) != nil {
			return name
		}
	}
	return ""
}

// upgrade names what asks to switch the connection to another protocol (h2c, WebSocket): after a 101 the
// transport hands the caller the raw connection, and every byte on it bypasses the gate. "" when nothing does.
func upgrade(h http.Header) string {
	if v := headerValues(h, "Upgrade"); v != nil {
		return "Upgrade: " + strings.Join(v, ", ")
	}
	if headerValues(h, "HTTP2-Settings") != nil {
		return "HTTP2-Settings"
	}
	for _, v := range headerValues(h, "Connection") {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return "Connection: upgrade"
			}
		}
	}
	return ""
}

// headerValues are the values of every header a server may take for name: a transport writes the keys
// of h as they are, servers compare them ignoring case, and CGI-style ones read '_' as '-'.
func headerValues(h http.Header, name string) []string {
	var out []string
	for k, vs := range h {
		if sameHeader(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}

// sameHeader says whether a server may take the key k, as a transport writes it, for the header name.
func sameHeader(k, name string) bool { return strings.EqualFold(strings.ReplaceAll(k, "_", "-"), name) }

// passThrough forwards a request the gate does not guard, as long as it carries nothing a server could
// read as a second request.
func (g *Gate) passThrough(req *http.Request) (*http.Response, error) {
	if len(req.Trailer) > 0 || headerValues(req.Header, "Trailer") != nil {
		// As on the guarded call: a server that merges trailers into the headers would read an override
		// or rewrite header there that the checks above never saw.
		return g.refuseUnread(req, route{}, http.StatusBadRequest, CodeRouteRefused,
			"precheck refuses a request with trailers: some servers merge them into the headers, and the DWS API has no use for them")
	}
	if !bodyless(req.Method) {
		if hasBody(req) {
			return g.send(req, closing(req))
		}
		return g.send(req, req)
	}
	carries, err := carriesBody(req)
	switch {
	case err != nil:
		return nil, upstreamError(fmt.Errorf("precheck reading the request body: %w", err), req.Header)
	case carries:
		return g.refuseUnread(req, route{}, http.StatusBadRequest, CodeUnexpectedBody,
			fmt.Sprintf("precheck refuses a %s request with a body: a server that expects none may read the body as another request", req.Method))
	case req.Body != nil && req.Body != http.NoBody: // an empty reader: send none, as net/http would
		req.Body.Close()
		fwd := *req
		fwd.Body = http.NoBody
		return g.send(req, &fwd)
	}
	return g.send(req, req)
}

// bodyless are the methods whose requests have no body for any DWS API; "" is GET, as net/http sends it.
func bodyless(method string) bool {
	if method == "" {
		return true
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace} {
		if strings.EqualFold(method, m) {
			return true
		}
	}
	return false
}

// hasBody says whether req may carry a body; when unsure (a reader of unknown length), it says yes.
func hasBody(req *http.Request) bool {
	return req.ContentLength != 0 || (req.Body != nil && req.Body != http.NoBody) || len(req.TransferEncoding) > 0 ||
		headerValues(req.Header, "Transfer-Encoding") != nil || nonZeroLength(req.Header)
}

func nonZeroLength(h http.Header) bool {
	for _, v := range headerValues(h, "Content-Length") {
		if strings.TrimSpace(v) != "0" {
			return true
		}
	}
	return false
}

// carriesBody says whether req carries a body, reading its first byte when nothing else tells, as net/http
// does before it sends a GET with a body of unknown length.
func carriesBody(req *http.Request) (bool, error) {
	if req.ContentLength > 0 || len(req.TransferEncoding) > 0 || headerValues(req.Header, "Transfer-Encoding") != nil || nonZeroLength(req.Header) {
		return true, nil
	}
	if req.Body == nil || req.Body == http.NoBody {
		return false, nil
	}
	var b [1]byte
	switch _, err := io.ReadFull(req.Body, b[:]); err {
	case nil:
		return true, nil
	case io.EOF:
		return false, nil
	default:
		req.Body.Close()
		return false, err
	}
}

// closing is req to be sent on an upstream connection that is closed after it, so that no byte it leaves
// behind (a body longer than announced, a second request in it) can be read as the next request.
// The caller's own connection headers go: a "Connection: keep-alive" beside the transport's "close"
// leaves the server to choose between the two, and one that names other headers makes an intermediary drop
// them.
func closing(req *http.Request) *http.Request {
	fwd := *req
	fwd.Close = true
	fwd.Header = req.Header.Clone()
	for k := range fwd.Header {
		if sameHeader(k, "Connection") || sameHeader(k, "Keep-Alive") || sameHeader(k, "Proxy-Connection") {
			delete(fwd.Header, k)
		}
	}
	return &fwd
}

// send forwards fwd, which is req or a copy of it, to the next transport.
func (g *Gate) send(req, fwd *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(fwd)
	if err != nil {
		return nil, upstreamError(err, req.Header)
	}
	return resp, nil
}

// check decides on the encrypt call: first on its body alone, then with the facts.
func (g *Gate) check(req *http.Request, r route) (*http.Response, error) {
	start := time.Now()
	ev := Event{ID: newID(), Time: start, Host: req.URL.Host, Path: req.URL.Path, ProjectID: r.projectID, ClusterID: r.clusterID}
	if problem := bodyHeadersProblem(req); problem != "" {
		closeBody(req)
		return g.refuseBody(req, &ev, start, problem)
	}
	body, err := g.readBody(req)
	if err != nil {
		return g.refuseBody(req, &ev, start, redact.Text(err.Error(), req.Header))
	}
	call := policy.Request{ProjectID: r.projectID, ClusterID: r.clusterID, Body: json.RawMessage(body)}
	if len(body) == 0 {
		call.Body = nil // the policy refuses "no body" by name
	}
	// A body the gate cannot read as every server would is refused before anything else sees it: the facts
	// provider, the fail-open path, the policy.
	requestOnly, problem := readRequest(call, body, g.limits)
	if problem != "" {
		return g.refuseBody(req, &ev, start, problem)
	}
	fwd := withBody(req, body)
	f, err := g.gatherFacts(req.Context(), call, requestOnly.MasterKeyID())
	if err != nil {
		ev.Failure = "gathering facts: " + redact.Text(err.Error(), req.Header)
		if ctxErr := req.Context().Err(); ctxErr != nil { // the caller gave up: no answer is wanted
			g.report(&ev, start)
			return nil, ctxErr
		}
		if g.failOpen && !errors.Is(err, facts.ErrNotFound) { // a failure the call causes is the caller's doing
			return g.evaluate(req, fwd, &ev, start, requestOnly, onlyFactsRefused)
		}
		return g.refuse(req, &ev, start, http.StatusServiceUnavailable, CodeFactsFailed, "precheck could not decide, so the call was not made: "+ev.Failure)
	}
	doc, err := policy.NewDocument(&policy.Input{Request: call, Cluster: f.Cluster, Key: f.Key, Tenant: f.Tenant}, g.limits)
	if err != nil {
		ev.Failure = "the facts make no valid input document: " + redact.Text(err.Error(), req.Header)
		return g.refuse(req, &ev, start, http.StatusServiceUnavailable, CodeCheckFailed, "precheck could not decide, so the call was not made: "+ev.Failure)
	}
	return g.evaluate(req, fwd, &ev, start, doc, allowed)
}

// withBody is the call to forward, if it goes on: the very bytes the client sent, framed by their length.
// Unlike a passed-through request (see closing), it keeps its connection: the gate read the whole body and
// frames exactly that, so nothing is left behind it, and the body is one JSON object, which no server reads
// as a request line even if it leaves the body unread.
func withBody(req *http.Request, body []byte) *http.Request {
	fwd := req.Clone(req.Context())
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	fwd.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	fwd.ContentLength = int64(len(body))
	fwd.TransferEncoding = nil
	return fwd
}

func (g *Gate) refuseBody(req *http.Request, ev *Event, start time.Time, problem string) (*http.Response, error) {
	ev.Failure, ev.Refused = "the request body: "+problem, true
	return g.refuse(req, ev, start, http.StatusBadRequest, CodeBodyRejected, "precheck cannot read the request body as the API would, so the call was not made: "+problem)
}

// bodyHeadersProblem says why the headers describe the body as something other than the UTF-8 JSON the
// gate reads, which a server would then read differently; "" when they do not.
func bodyHeadersProblem(req *http.Request) string {
	types := headerValues(req.Header, "Content-Type")
	switch {
	case len(types) > 1:
		return "it has more than one Content-Type"
	case len(types) == 1:
		mediaType, params, err := mime.ParseMediaType(types[0])
		if err != nil {
			return fmt.Sprintf("its Content-Type %q cannot be parsed: %v", types[0], err)
		}
		if mediaType != "application/json" { // ParseMediaType lower-cases it
			return fmt.Sprintf("its Content-Type is %q, not application/json", mediaType)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return fmt.Sprintf("its Content-Type declares the charset %q, not utf-8", cs)
		}
	}
	for _, v := range headerValues(req.Header, "Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if !strings.EqualFold(strings.TrimSpace(enc), "identity") {
				return fmt.Sprintf("its Content-Encoding is %q: precheck reads only a body that is not encoded (identity)", v)
			}
		}
	}
	if headerValues(req.Header, "Transfer-Encoding") != nil {
		return "it has a Transfer-Encoding header: precheck frames the body by its length alone"
	}
	if len(req.Trailer) > 0 {
		return "it has trailers, which some servers merge into the headers"
	}
	return ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (g *Gate) readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	body, err := io.ReadAll(io.LimitReader(req.Body, int64(g.maxBody())+1))
	if err != nil {
		return nil, fmt.Errorf("reading it failed: %w", err)
	}
	if len(body) > g.maxBody() {
		return nil, fmt.Errorf("it is over the limit of %d bytes", g.maxBody())
	}
	if req.ContentLength > 0 && req.ContentLength != int64(len(body)) {
		return nil, fmt.Errorf("it is %d bytes, not the %d its length says", len(body), req.ContentLength)
	}
	for _, v := range headerValues(req.Header, "Content-Length") {
		if strings.TrimSpace(v) != strconv.Itoa(len(body)) {
			return nil, fmt.Errorf("it is %d bytes, not the %q its Content-Length header says", len(body), v)
		}
	}
	return body, nil
}

// readRequest reads the call on its own, as the document policy.NewDocument makes of it, and says what is
// wrong with it when that refuses it.
func readRequest(call policy.Request, body []byte, l policy.Limits) (*policy.Document, string) {
	if len(body) > 0 {
		if !utf8.Valid(body) {
			return nil, "it is not valid UTF-8"
		}
		if !json.Valid(body) {
			return nil, "it is not JSON: " + syntaxProblem(body)
		}
	}
	doc, err := policy.NewDocument(&policy.Input{Request: call}, l)
	var inErr *policy.InputError
	switch {
	case errors.As(err, &inErr) && inErr.Path != "":
		return nil, inErr.Path + ": " + inErr.Msg
	case errors.As(err, &inErr):
		return nil, inErr.Msg
	case err != nil:
		return nil, err.Error()
	}
	return doc, ""
}

func syntaxProblem(body []byte) string {
	var x any
	err := json.Unmarshal(body, &x)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "not one JSON value"
}

// gatherFacts asks for the facts of the call's cluster and of keyID, the KMS key its body names ("" for
// none).
func (g *Gate) gatherFacts(ctx context.Context, call policy.Request, keyID string) (*facts.Facts, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	f, err := g.facts.Facts(ctx, facts.Request{ProjectID: call.ProjectID, ClusterID: call.ClusterID, KeyID: keyID})
	if err != nil {
		return nil, err
	}
	if f == nil {
		f = &facts.Facts{}
	}
	return f, nil
}

// evaluate decides on doc and forwards the call if lets says the decision lets it through.
func (g *Gate) evaluate(req, fwd *http.Request, ev *Event, start time.Time, doc *policy.Document, lets func(*policy.Decision) bool) (*http.Response, error) {
	if g.observe != nil { // only an observer sees the digest
		sum := sha256.Sum256(doc.JSON())
		ev.InputDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	// The policy is evaluated under the call's own context: a context that cannot end (the SDK's) lets the
	// wasm engine run its fast code, one with a deadline is honoured.
	d, by, err := g.checkDocument(req.Context(), doc)
	if by != nil {
		ev.PolicyRevision = by.Revision()
	}
	if err == nil {
		err = malformed(d)
	}
	if err != nil { // never fail open: the policy is what the gate is for
		ev.Failure = strings.TrimPrefix(ev.Failure+"; ", "; ") + "evaluating the policy: " + redact.Text(err.Error(), req.Header)
		return g.refuse(req, ev, start, http.StatusServiceUnavailable, CodeCheckFailed, "precheck could not decide, so the call was not made: "+ev.Failure)
	}
	ev.Decision = d
	if !lets(d) {
		return g.refuse(req, ev, start, d.Error.Status, d.Error.ErrorCode, d.Error.ErrorMsg)
	}
	ev.Forwarded = true
	g.report(ev, start)
	// The call converts the cluster (or, if it fails, may have begun to): what the provider remembers of
	// it is from before, and no next call may be decided on it. Forgotten before the call goes, and again
	// once it is answered: facts asked for while it was under way may be from before it too.
	g.forget(ev)
	defer g.forget(ev)
	return g.send(req, fwd)
}

// forget has the facts provider, if it remembers facts, forget the cluster of the call ev reports.
func (g *Gate) forget(ev *Event) {
	if f, ok := g.facts.(facts.Forgetter); ok {
		f.Forget(ev.ProjectID, ev.ClusterID)
	}
}

// checkDocument decides with the gate's checker, and says which policy decided when the checker can.
func (g *Gate) checkDocument(ctx context.Context, doc *policy.Document) (*policy.Decision, *policy.Policy, error) {
	if e, ok := g.checker.(interface {
		CheckDocumentWithPolicy(context.Context, *policy.Document) (*policy.Decision, *policy.Policy, error)
	}); ok {
		return e.CheckDocumentWithPolicy(ctx, doc)
	}
	d, err := g.checker.CheckDocument(ctx, doc)
	return d, nil, err
}

// malformed catches a checker (any plugin.Checker may be one) whose answer cannot be acted on.
func malformed(d *policy.Decision) error {
	switch {
	case d == nil:
		return errors.New("the checker answered no decision")
	case !d.Allowed && d.Error == nil:
		return errors.New("the checker refused without an error to answer with")
	}
	return nil
}

func allowed(d *policy.Decision) bool { return d.Allowed }

// onlyFactsRefused lets a call through on a decision made without facts when nothing the request itself
// says is refused: every violation is about a fact the gate could not gather.
func onlyFactsRefused(d *policy.Decision) bool {
	for _, v := range d.Violations {
		if !isFact(v.Field) {
			return false
		}
	}
	return true
}

func isFact(field string) bool {
	for _, member := range []string{"cluster", "key", "tenant"} {
		if field == member || strings.HasPrefix(field, member+".") {
			return true
		}
	}
	return false
}

// refuseUnread refuses a request before its body is read (a RoundTripper closes the body, whatever it does).
func (g *Gate) refuseUnread(req *http.Request, r route, status int, code, msg string) (*http.Response, error) {
	closeBody(req)
	start := time.Now()
	ev := Event{ID: newID(), Time: start, Host: req.URL.Host, Path: req.URL.Path, ProjectID: r.projectID, ClusterID: r.clusterID, Failure: msg, Refused: true}
	return g.refuse(req, &ev, start, status, code, msg)
}

// refuse answers the call as the API would refuse it: the status, and {"error_code", "error_msg"}.
func (g *Gate) refuse(req *http.Request, ev *Event, start time.Time, status int, code, msg string) (*http.Response, error) {
	g.report(ev, start)
	body, err := json.Marshal(map[string]string{"error_code": code, "error_msg": msg})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Request-Id", ev.ID)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

func (g *Gate) report(ev *Event, start time.Time) {
	ev.Latency = time.Since(start)
	if g.logger != nil {
		attrs := []any{"id", ev.ID, "project_id", ev.ProjectID, "cluster_id", ev.ClusterID,
			"forwarded", ev.Forwarded, "latency", ev.Latency}
		if ev.Decision != nil {
			attrs = append(attrs, "allowed", ev.Decision.Allowed, "violations", codes(ev.Decision.Violations))
		}
		if ev.Failure != "" {
			attrs = append(attrs, "failure", ev.Failure)
		}
		g.logger.Info("precheck gate", attrs...)
	}
	if g.observe != nil {
		g.observe(*ev)
	}
}

func codes(vs []policy.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Code
	}
	return out
}

// upstreamError is err with the caller's secrets taken out of its text: a transport's error may quote what
// an upstream answered, and whoever gets it (a reverse proxy in front of the gate) may log it or answer
// with it. The cause stays reachable for errors.Is and errors.As.
func upstreamError(err error, h http.Header) error {
	msg := redact.Text(err.Error(), h)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Timeout keeps a wrapped timeout one: net/url.Error asks its cause directly, not through Unwrap.
func (e *redactedError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed")) // never, on the platforms Go supports
	}
	return hex.EncodeToString(b[:])
}
