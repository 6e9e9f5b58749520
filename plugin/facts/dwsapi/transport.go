package dwsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// CallPolicy says how a Transport paces and retries the calls it carries. The zero value is usable: no rate
// limit, and the defaults below for the rest.
type CallPolicy struct {
	// RequestsPerSecond caps the requests sent, retries included (0: no cap); Burst is how many may go at
	// once (default 1). The cap holds across every client sharing the Transport.
	RequestsPerSecond float64
	Burst             int
	// MaxRetries is how often a throttled call is sent again (0: DefaultMaxRetries; negative: never).
	MaxRetries int
	// BaseBackoff and MaxBackoff bound the wait before a retry: BaseBackoff doubled per attempt, with
	// jitter, capped at MaxBackoff (defaults 200ms, 10s). A Retry-After longer than that is still honoured.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxRetryAfter is the longest Retry-After honoured (default 60s): an answer asking for a longer wait
	// is given up on and returned as it is.
	MaxRetryAfter time.Duration
	// Timeout bounds each attempt, from sending the request to reading the whole answer (default 30s).
	Timeout time.Duration
}

// Defaults of CallPolicy.
const (
	DefaultMaxRetries    = 5
	DefaultBaseBackoff   = 200 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultTimeout       = 30 * time.Second
)

func (p CallPolicy) withDefaults() CallPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = DefaultMaxRetries
	}
	if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = DefaultBaseBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	p.Burst = max(1, p.Burst)
	return p
}

// ThrottlingCodes are the error codes that mean "too many requests, try later", whatever the status: the API
// gateway's APIGW.0308 ("The throttling threshold has been reached"), which some services' documentation
// spells APIG.0308. DWS documents no throttling code of its own; its gateway answers 429 with these.
var ThrottlingCodes = []string{"APIGW.0308", "APIG.0308"}

// Stats counts what a Transport did.
type Stats struct {
	Requests  int64 // requests sent, retries included
	Throttled int64 // answers that were throttling (429 or a throttling code)
	Retries   int64 // requests sent again after a throttling answer
	GaveUp    int64 // throttling answers returned to the caller: retries used up, or Retry-After too long
}

// Transport is the http.RoundTripper the SDK clients of Connect send through: it keeps every request under
// the CallPolicy's rate, and sends a throttled one again after the Retry-After the server asked for (or a
// capped, jittered backoff), up to MaxRetries times. It lives as long as the context it was made with: when
// that ends, waiting requests fail with its error. It is safe for concurrent use.
//
// Pacing and retrying are here, under the SDK, because the SDK's calls take no context and its errors carry
// no response headers (no Retry-After); a retried request is the same signed request, which the API accepts
// within its clock-skew window (15 minutes).
type Transport struct {
	ctx     context.Context
	base    http.RoundTripper
	policy  CallPolicy
	limiter *rate.Limiter // nil: no cap
	sleep   func(ctx context.Context, d time.Duration) error

	requests, throttled, retries, gaveUp atomic.Int64
}

// NewTransport returns a Transport over base (nil: a clone of http.DefaultTransport, which honours the
// HTTPS_PROXY environment, keeping enough idle connections for concurrent gathering).
func NewTransport(ctx context.Context, base http.RoundTripper, policy CallPolicy) *Transport {
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		base = t
	}
	policy = policy.withDefaults()
	t := &Transport{ctx: ctx, base: base, policy: policy, sleep: sleepCtx}
	if policy.RequestsPerSecond > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(policy.RequestsPerSecond), policy.Burst)
	}
	return t
}

// Stats returns what the Transport has done so far.
func (t *Transport) Stats() Stats {
	return Stats{Requests: t.requests.Load(), Throttled: t.throttled.Load(), Retries: t.retries.Load(), GaveUp: t.gaveUp.Load()}
}

// RoundTrip sends req, paced and retried as the policy says.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
	}
	// The request's own context (the SDK's client timeout) and the Transport's (the gathering run) both
	// end the wait.
	ctx, stop := mergeContexts(req.Context(), t.ctx)
	for attempt := 0; ; attempt++ {
		if t.limiter != nil {
			if err := t.limiter.Wait(ctx); err != nil {
				stop()
				return nil, fmt.Errorf("waiting for the rate limit: %w", cause(ctx, err))
			}
		}
		resp, cancel, err := t.send(ctx, req, body)
		if err != nil {
			stop()
			return nil, err
		}
		// The answer's body is read after RoundTrip returns: its contexts end when it is closed.
		keep := func() *http.Response {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(); stop() }}
			return resp
		}
		retryAfter, throttled := throttling(resp)
		if !throttled {
			return keep(), nil
		}
		t.throttled.Add(1)
		wait := max(retryAfter, t.backoff(attempt))
		if attempt >= t.policy.MaxRetries || retryAfter > t.policy.MaxRetryAfter {
			t.gaveUp.Add(1)
			return keep(), nil // the SDK reports it as the API's error, with its status and code
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // so that the connection is reused
		resp.Body.Close()
		cancel()
		if err := t.sleep(ctx, wait); err != nil {
			stop()
			return nil, fmt.Errorf("waiting %v to retry a throttled call: %w", wait.Round(time.Millisecond), cause(ctx, err))
		}
		t.retries.Add(1)
	}
}

// send makes one attempt under the policy's timeout; cancel ends it once its answer has been read.
func (t *Transport) send(ctx context.Context, req *http.Request, body []byte) (*http.Response, context.CancelFunc, error) {
	actx, cancel := context.WithTimeout(ctx, t.policy.Timeout)
	r := req.Clone(actx)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
	}
	t.requests.Add(1)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// backoff is the wait before retry attempt+1: BaseBackoff doubled per attempt, capped, half of it jittered
// so that many throttled workers do not come back at the same instant.
func (t *Transport) backoff(attempt int) time.Duration {
	d := t.policy.MaxBackoff
	if attempt < 30 {
		d = min(d, t.policy.BaseBackoff<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// maxErrorBody bounds how much of an error answer is read to look for a throttling code.
const maxErrorBody = 64 << 10

// throttling reports whether resp is a throttling answer (429, or an error answer with a throttling code) and
// the Retry-After it asks for (0 when it names none). An error answer's body is read and put back.
func throttling(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode < 400 {
		return 0, false
	}
	throttled := resp.StatusCode == http.StatusTooManyRequests
	if !throttled {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		throttled = err == nil && hasThrottlingCode(b)
	}
	if !throttled {
		return 0, false
	}
	return retryAfter(resp.Header.Get("Retry-After"), time.Now()), true
}

// hasThrottlingCode reports whether an error body names a throttling code, at its top level or (as KMS
// answers) under "error".
func hasThrottlingCode(b []byte) bool {
	var body struct {
		ErrorCode string `json:"error_code"`
		Code      string `json:"code"`
		Error     *struct {
			ErrorCode string `json:"error_code"`
			Code      string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil {
		return false
	}
	codes := []string{body.ErrorCode, body.Code}
	if body.Error != nil {
		codes = append(codes, body.Error.ErrorCode, body.Error.Code)
	}
	for _, c := range codes {
		for _, t := range ThrottlingCodes {
			if c != "" && strings.EqualFold(c, t) {
				return true
			}
		}
	}
	return false
}

// retryAfter reads a Retry-After header (RFC 9110: delay-seconds or an HTTP-date); 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, at.Sub(now))
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mergeContexts returns a context that ends when either a or b ends.
func mergeContexts(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() { stop(); cancel(nil) }
}

// cause prefers the reason the context ended to the limiter's own wording of it.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
		return c
	}
	return err
}
