package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Backend turns a Policy into an Evaluator. The rego backend (Rego) is in this package; the wasm one is in
// package wasm.
type Backend interface {
	// Name is how commands and logs call the backend: "rego", "wasm".
	Name() string
	// Prepare does all the expensive work once per policy load: compiling, planning, instantiating.
	Prepare(ctx context.Context, p *Policy) (Evaluator, error)
}

// Evaluator evaluates one prepared policy. Eval must be safe for concurrent use, and must return the
// decision as the policy's data.precheck.decision states it, in its order; the Engine checks it.
type Evaluator interface {
	Eval(ctx context.Context, doc *Document, now time.Time) (*Decision, error)
	// Close releases what Prepare acquired. The Engine calls it once no evaluation uses the Evaluator.
	Close(ctx context.Context) error
}

// Engine decides on input documents with a prepared policy. It is safe for concurrent use; Reload swaps
// the policy atomically and keeps the last good one when the new one fails.
type Engine struct {
	backend Backend
	limits  Limits
	now     func() time.Time
	current atomic.Pointer[prepared]
	reload  sync.Mutex // one Reload at a time, so that retiring the old policy is never raced
}

// prepared is one loaded policy. Evaluations hold mu shared; retiring takes it exclusively, so the
// Evaluator is closed only after the last evaluation that started on it has finished.
type prepared struct {
	policy  *Policy
	eval    Evaluator
	mu      sync.RWMutex
	retired bool
}

// Option configures an Engine.
type Option func(*Engine)

// WithBackend chooses the evaluation backend (default: Rego()).
func WithBackend(b Backend) Option { return func(e *Engine) { e.backend = b } }

// WithLimits sets the limits on input documents (default: DefaultLimits).
func WithLimits(l Limits) Option { return func(e *Engine) { e.limits = l } }

// WithClock sets the clock the policy sees (time.now_ns, waiver expiry); the default is time.Now.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// New prepares p for evaluation.
func New(ctx context.Context, p *Policy, opts ...Option) (*Engine, error) {
	e := &Engine{backend: Rego(), limits: DefaultLimits, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	pr, err := e.prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	e.current.Store(pr)
	return e, nil
}

func (e *Engine) prepare(ctx context.Context, p *Policy) (*prepared, error) {
	if p == nil {
		return nil, errors.New("precheck: no policy")
	}
	ev, err := e.backend.Prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	return &prepared{policy: p, eval: ev}, nil
}

// Reload prepares p and makes it the engine's policy. When p fails to prepare, the engine keeps the policy
// it had and Reload returns the error. Evaluations in flight finish on the policy they started with.
func (e *Engine) Reload(ctx context.Context, p *Policy) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	pr, err := e.prepare(ctx, p)
	if err != nil {
		return err
	}
	old := e.current.Swap(pr)
	go old.retire(context.WithoutCancel(ctx))
	return nil
}

func (pr *prepared) retire(ctx context.Context) {
	pr.mu.Lock()
	pr.retired = true
	pr.mu.Unlock()
	_ = pr.eval.Close(ctx)
}

// ErrUnreadDocument is a Document that no constructor made (a zero Document{}): nothing says it was read
// as ReadDocument reads one, so no policy decides on it.
var ErrUnreadDocument = errors.New("precheck: the document was not made by ReadDocument, ReadEnvelope or NewDocument")

// ErrClosed is returned by an Engine after Close.
var ErrClosed = errors.New("precheck: the engine is closed")

// Close releases the engine's policy; later checks return ErrClosed.
func (e *Engine) Close(ctx context.Context) error {
	pr := e.current.Load()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.retired {
		return nil
	}
	pr.retired = true
	return pr.eval.Close(ctx)
}

// Policy returns the policy the engine decides with now.
func (e *Engine) Policy() *Policy { return e.current.Load().policy }

// Backend returns the name of the engine's backend.
func (e *Engine) Backend() string { return e.backend.Name() }

// Limits returns the limits the engine applies to input documents.
func (e *Engine) Limits() Limits { return e.limits }

// Check decides on an input built in Go.
func (e *Engine) Check(ctx context.Context, in *Input) (*Decision, error) {
	doc, err := NewDocument(in, e.limits)
	if err != nil {
		return nil, err
	}
	return e.CheckDocument(ctx, doc)
}

// CheckJSON decides on an input document given as JSON. A document ReadDocument refuses (malformed, too
// large, too deep, not an object, a member twice or unknown...) gives an *InputError; wrong types inside it
// are the policy's to judge (a violation on that field).
func (e *Engine) CheckJSON(ctx context.Context, data []byte) (*Decision, error) {
	doc, err := ReadDocument(data, e.limits)
	if err != nil {
		return nil, err
	}
	return e.CheckDocument(ctx, doc)
}

// CheckDocument decides on a document already read by ReadDocument, ReadEnvelope or NewDocument.
func (e *Engine) CheckDocument(ctx context.Context, doc *Document) (*Decision, error) {
	d, _, err := e.CheckDocumentWithPolicy(ctx, doc)
	return d, err
}

// CheckDocumentWithPolicy is CheckDocument that also returns the policy that decided. Across a Reload,
// Policy names the new policy at once while a decision under way finishes on the old one: what records a
// decision (a decision log) names the policy returned here.
func (e *Engine) CheckDocumentWithPolicy(ctx context.Context, doc *Document) (*Decision, *Policy, error) {
	if doc == nil || !doc.read {
		return nil, nil, ErrUnreadDocument
	}
	for {
		pr := e.current.Load()
		pr.mu.RLock()
		if pr.retired {
			pr.mu.RUnlock()
			if e.current.Load() == pr {
				return nil, nil, ErrClosed
			}
			continue // swapped out between Load and RLock: take the new one
		}
		d, err := pr.eval.Eval(ctx, doc, e.now())
		pr.mu.RUnlock()
		if err != nil {
			return nil, pr.policy, err
		}
		if err := finish(d); err != nil {
			return nil, pr.policy, fmt.Errorf("policy %s: %w", pr.policy.Source(), err)
		}
		return d, pr.policy, nil
	}
}

// finish checks a decision as the policy returned it, so that every backend, and any other OPA host, gives
// the same bytes: the policy sorts violations and warnings (by CompareViolations) and leaves out empty
// members; the Engine does not fix that up, it refuses a decision that is out of order or breaks the
// decision's invariants. Absent violations or warnings become [] (a representation, not a fix-up).
func finish(d *Decision) error {
	if d.Violations == nil {
		d.Violations = []Violation{}
	}
	if d.Warnings == nil {
		d.Warnings = []Violation{}
	}
	if err := checkOrder("violations", d.Violations); err != nil {
		return err
	}
	if err := checkOrder("warnings", d.Warnings); err != nil {
		return err
	}
	if d.Allowed != (len(d.Violations) == 0) {
		return fmt.Errorf("inconsistent decision: allowed is %v with %d violations", d.Allowed, len(d.Violations))
	}
	if !d.Allowed && d.Error == nil {
		return errors.New("inconsistent decision: a refusal without an error")
	}
	for _, v := range d.Violations {
		if v.Code == "" || v.Severity != SeverityDeny {
			return fmt.Errorf("malformed violation %+v", v)
		}
	}
	for _, v := range d.Warnings {
		if v.Code == "" || v.Severity != SeverityWarn {
			return fmt.Errorf("malformed warning %+v", v)
		}
	}
	return nil
}

// checkOrder refuses findings that are not in CompareViolations order, naming the first pair out of order.
func checkOrder(name string, vs []Violation) error {
	if slices.IsSortedFunc(vs, CompareViolations) {
		return nil
	}
	for i := 1; i < len(vs); i++ {
		if CompareViolations(vs[i-1], vs[i]) > 0 {
			return fmt.Errorf("malformed decision: %s are not sorted by code, field, message and actual: "+
				"[%d] %s on %s comes before [%d] %s on %s", name, i-1, vs[i-1].Code, vs[i-1].Field, i, vs[i].Code, vs[i].Field)
		}
	}
	return nil
}

// CompareViolations is the order of violations and warnings in a decision: by code, field, message, actual.
func CompareViolations(a, b Violation) int {
	return cmp.Or(
		cmp.Compare(a.Code, b.Code),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Message, b.Message),
		cmp.Compare(a.Actual, b.Actual),
	)
}

// State is what an engine reports about how it evaluates, beyond its decisions: for /readyz, metrics and
// logs. Backends with one kind of code (rego) report only the backend and the revision.
type State struct {
	Backend  string `json:"backend"`
	Revision string `json:"revision"`
	// Code is the code the wasm backend runs: "fast" (no termination checks: the trusted policy's) or
	// "interruptible" (with them); "" for backends without that choice.
	Code string `json:"code,omitempty"`
	// Degraded says the watchdog switched the policy to the interruptible code because an evaluation ran
	// past the runaway limit; DegradedAt and Reason say when and why.
	Degraded   bool      `json:"degraded"`
	DegradedAt time.Time `json:"degraded_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
	// Runaways counts the evaluations the watchdog took out of the pool; Abandoned those whose callers
	// gave up (their context ended) before the fast code finished.
	Runaways  int64 `json:"runaways"`
	Abandoned int64 `json:"abandoned"`
}

// StateReporter is an Evaluator that reports a State; Engine.State asks it.
type StateReporter interface {
	State() State
}

// State reports how the engine evaluates its current policy.
func (e *Engine) State() State {
	pr := e.current.Load()
	var s State
	if r, ok := pr.eval.(StateReporter); ok {
		s = r.State()
	}
	s.Backend, s.Revision = e.backend.Name(), pr.policy.Revision()
	return s
}
