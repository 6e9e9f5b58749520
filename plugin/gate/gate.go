// Package gate puts precheck in front of the DWS "convert to an encrypted cluster" call: an
// http.RoundTripper that wraps the transport of any HTTP client, the official Huawei Cloud Go SDK's
// included. It recognises POST /v2/{project_id}/clusters/{cluster_id}/encrypt (any host, any path prefix),
// gathers facts, decides, and either forwards the call untouched or answers it itself, in the API's error
// shape, so that the SDK surfaces the refusal as an ordinary service error. A refused call never reaches the
// server.
//
//	engine, _ := policy.New(ctx, p)
//	g := gate.New(http.DefaultTransport, engine, gate.WithFacts(facts.Cached(provider, 30*time.Second)))
//	client := &http.Client{Transport: g}   // or the SDK's HttpConfig.WithHttpTransport(g)
//
// Gathering facts or deciding can fail; the gate then refuses the call (fails closed) unless built
// WithFailOpen. Each call it checks is reported to an optional observer; no header, and so no credential, is
// ever part of what the gate logs or reports.
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
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// Codes of the refusals the gate makes itself, when it could not decide. They are not Rego rules, so they
// are listed here and in the README rather than in the rule catalog.
const (
	CodeFactsFailed  = "PRECHECK-GATE-001" // the facts could not be gathered (503)
	CodeCheckFailed  = "PRECHECK-GATE-002" // the policy could not be evaluated (503)
	CodeBodyRejected = "PRECHECK-GATE-003" // the request body could not be read or is too large (400)
)

// Event is what the gate reports about one call it checked. It holds no header and no credential.
type Event struct {
	ID        string // also the X-Request-Id of a refusal the gate answers
	Time      time.Time
	Host      string
	Path      string
	ProjectID string
	ClusterID string
	// InputDigest identifies the input document decided on ("sha256:..."), without revealing it.
	InputDigest string
	// Decision is the policy's decision; nil when none was made (facts or evaluation failed).
	Decision *policy.Decision
	// Forwarded says whether the call went on to the server.
	Forwarded bool
	// Failure says what went wrong when no decision could be made ("" otherwise).
	Failure string
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
	maxBody  int
	timeout  time.Duration
}

// Option configures a Gate.
type Option func(*Gate)

// WithFacts sets where the facts come from (default: none, so the policy knows nothing beyond the request,
// and refuses).
func WithFacts(p facts.Provider) Option { return func(g *Gate) { g.facts = p } }

// WithFailOpen makes the gate forward the call when it cannot decide (facts or evaluation failed), instead
// of refusing it. A decision that refuses still refuses.
func WithFailOpen() Option { return func(g *Gate) { g.failOpen = true } }

// WithObserver reports every checked call, for logs and metrics. It is called synchronously, before the call
// is forwarded or answered; keep it quick.
func WithObserver(f func(Event)) Option { return func(g *Gate) { g.observe = f } }

// WithTimeout bounds the time to gather the facts (default 10s). Past it the gate cannot decide, and refuses
// (or, WithFailOpen, forwards). The SDK sends requests without a deadline of their own, so this is what stops
// a hung facts API from hanging the call.
func WithTimeout(d time.Duration) Option { return func(g *Gate) { g.timeout = d } }

// WithLogger logs one line per checked call (never a header).
func WithLogger(l *slog.Logger) Option { return func(g *Gate) { g.logger = l } }

// New wraps next (http.DefaultTransport when nil) with the gate, deciding with checker: a *policy.Engine or
// a *plugin.Chain.
func New(next http.RoundTripper, checker plugin.Checker, opts ...Option) *Gate {
	if next == nil {
		next = http.DefaultTransport
	}
	// The body may take half of the input document's limit; the facts take the rest.
	g := &Gate{next: next, checker: checker, facts: facts.Func(noFacts), maxBody: policy.DefaultLimits.MaxBytes / 2, timeout: 10 * time.Second}
	for _, o := range opts {
		o(g)
	}
	return g
}

func noFacts(context.Context, facts.Request) (*facts.Facts, error) { return &facts.Facts{}, nil }

// encryptPath matches the guarded call's path after any prefix (an API gateway, a version proxy).
var encryptPath = regexp.MustCompile(`(?:^|/)v2/([^/]+)/clusters/([^/]+)/encrypt/?$`)

// RoundTrip checks the encrypt call and passes every other request through.
func (g *Gate) RoundTrip(req *http.Request) (*http.Response, error) {
	m := encryptPath.FindStringSubmatch(req.URL.Path)
	if req.Method != http.MethodPost || m == nil {
		return g.next.RoundTrip(req)
	}
	start := time.Now()
	ev := Event{ID: newID(), Time: start, Host: req.URL.Host, Path: req.URL.Path, ProjectID: m[1], ClusterID: m[2]}

	body, err := g.readBody(req)
	if err != nil {
		ev.Failure = err.Error()
		return g.refuse(req, &ev, start, http.StatusBadRequest, CodeBodyRejected, "precheck could not read the request body: "+err.Error())
	}
	// The call goes on, if it does, with the very bytes the client sent.
	fwd := req.Clone(req.Context())
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	fwd.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	d, code, err := g.decide(req.Context(), &ev, body)
	ev.Decision = d
	switch {
	case err != nil:
		ev.Failure = err.Error()
		if g.failOpen {
			return g.forward(fwd, &ev, start)
		}
		return g.refuse(req, &ev, start, http.StatusServiceUnavailable, code, "precheck could not decide, so the call was not made: "+err.Error())
	case !d.Allowed:
		return g.refuse(req, &ev, start, d.Error.Status, d.Error.ErrorCode, d.Error.ErrorMsg)
	default:
		return g.forward(fwd, &ev, start)
	}
}

func (g *Gate) readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	body, err := io.ReadAll(io.LimitReader(req.Body, int64(g.maxBody)+1))
	if err != nil {
		return nil, err
	}
	if len(body) > g.maxBody {
		return nil, fmt.Errorf("the body is over the limit of %d bytes", g.maxBody)
	}
	return body, nil
}

// decide gathers the facts and evaluates the policy over the call.
func (g *Gate) decide(ctx context.Context, ev *Event, body []byte) (*policy.Decision, string, error) {
	projectID, clusterID := ev.ProjectID, ev.ClusterID
	// The body goes into the document as the JSON the client sent; a body that is not JSON goes in as a
	// string, for the policy to refuse by name.
	rawBody := json.RawMessage(body)
	if len(body) == 0 {
		rawBody = nil
	} else if !json.Valid(body) {
		rawBody, _ = json.Marshal(string(body))
	}
	factsCtx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	f, err := g.facts.Facts(factsCtx, facts.Request{ProjectID: projectID, ClusterID: clusterID, KeyID: keyID(body)})
	if err != nil {
		return nil, CodeFactsFailed, fmt.Errorf("gathering facts: %w", err)
	}
	if f == nil {
		f = &facts.Facts{}
	}
	doc, err := policy.NewDocument(&policy.Input{
		Request: policy.Request{ProjectID: projectID, ClusterID: clusterID, Body: rawBody},
		Cluster: f.Cluster,
		Key:     f.Key,
		Tenant:  f.Tenant,
	})
	if err != nil {
		return nil, CodeCheckFailed, err
	}
	if g.observe != nil { // only an observer sees the digest
		sum := sha256.Sum256(doc.JSON())
		ev.InputDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	// The policy is evaluated under the call's own context: a context that cannot end (the SDK's) lets the
	// wasm engine run its fast code, one with a deadline is honoured.
	d, err := g.checker.CheckDocument(ctx, doc)
	if err != nil {
		return nil, CodeCheckFailed, fmt.Errorf("evaluating the policy: %w", err)
	}
	return d, "", nil
}

// keyID is the KMS key the body names, for the key facts; "" when it names none.
func keyID(body []byte) string {
	var b struct {
		Encrypt struct {
			MasterKeyID any `json:"master_key_id"`
		} `json:"encrypt"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	id, _ := b.Encrypt.MasterKeyID.(string)
	return id
}

func (g *Gate) forward(req *http.Request, ev *Event, start time.Time) (*http.Response, error) {
	ev.Forwarded = true
	g.report(ev, start)
	return g.next.RoundTrip(req)
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

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("crypto/rand failed")) // never, on the platforms Go supports
	}
	return hex.EncodeToString(b[:])
}
