package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/precheck/precheck/policy"
)

// Hook is anything that maps an input document to findings: the Rego policy (either engine), a compiled
// precheck.wasm, a third-party hook module. A hook answers with a decision of its own; a Chain merges them.
//
// Run returns an error only when the hook could not judge at all (it trapped, timed out, answered garbage);
// the Chain turns that into a refusal naming the hook, so that a broken hook never allows by failing.
type Hook interface {
	Name() string
	Run(ctx context.Context, doc *policy.Document) (*policy.Decision, error)
}

// Checker decides on a document: a *policy.Engine, or a *Chain of hooks. The gate takes one.
type Checker interface {
	CheckDocument(ctx context.Context, doc *policy.Document) (*policy.Decision, error)
}

// Codes of the refusals the chain itself makes. They are not Rego rules, so they are listed here and in the
// README rather than in the rule catalog.
const (
	// CodeHookFailed: a hook could not judge the document (trap, deadline, memory cap, malformed answer).
	CodeHookFailed = "PRECHECK-HOOK-001"
)

// HookFailedStatus is the HTTP status of a refusal because a hook failed: the check, not the request, is
// broken, and a retry may succeed.
const HookFailedStatus = 503

// Chain runs hooks in order and merges their findings into one decision. It is safe for concurrent use if
// its hooks are.
type Chain struct {
	hooks []Hook
}

// ErrEmptyChain is NewChain's answer to no hooks: a chain that judges nothing would allow everything.
var ErrEmptyChain = errors.New("precheck: a chain needs at least one hook")

// NewChain returns a chain of the hooks, run in the order given. There must be at least one, and none nil.
func NewChain(hooks ...Hook) (*Chain, error) {
	if len(hooks) == 0 {
		return nil, ErrEmptyChain
	}
	for i, h := range hooks {
		if h == nil {
			return nil, fmt.Errorf("precheck: hook %d of the chain is nil", i)
		}
	}
	return &Chain{hooks: slices.Clone(hooks)}, nil
}

// CheckDocument runs every hook (a refusal does not stop the others: the caller sees every reason at once)
// and merges their decisions: violations and warnings are concatenated and sorted; the call is allowed only
// if no hook refused; the error is that of the first hook, in chain order, that refused, with the messages of
// every violation. The chain fails closed: a hook that errs, answers no decision, or refuses without saying
// why is a refusal naming it.
func (c *Chain) CheckDocument(ctx context.Context, doc *policy.Document) (*policy.Decision, error) {
	merged := &policy.Decision{Allowed: true, Violations: []policy.Violation{}, Warnings: []policy.Violation{}}
	for _, h := range c.hooks {
		d := run(ctx, h, doc)
		merged.Violations = append(merged.Violations, d.Violations...)
		merged.Warnings = append(merged.Warnings, d.Warnings...)
		if !d.Allowed && merged.Error == nil && d.Error != nil {
			merged.Error = &policy.APIError{Status: d.Error.Status, ErrorCode: d.Error.ErrorCode}
		}
	}
	if len(merged.Violations) == 0 {
		return merged, nil
	}
	merged.Allowed = false
	slices.SortFunc(merged.Violations, policy.CompareViolations)
	slices.SortFunc(merged.Warnings, policy.CompareViolations)
	if merged.Error == nil { // a hook reported violations yet allowed, or refused without an error: refuse anyway
		merged.Error = &policy.APIError{Status: 403, ErrorCode: merged.Violations[0].Code}
	}
	msgs := make([]string, len(merged.Violations))
	for i, v := range merged.Violations {
		msgs[i] = v.Code + ": " + v.Message
	}
	merged.Error.ErrorMsg = strings.Join(msgs, "; ")
	return merged, nil
}

// run is h's decision on doc, or the refusal that stands for one when h could not judge.
func run(ctx context.Context, h Hook, doc *policy.Document) *policy.Decision {
	d, err := h.Run(ctx, doc)
	switch {
	case err != nil:
		return failed(h.Name(), err)
	case d == nil:
		return failed(h.Name(), errors.New("it answered no decision"))
	case !d.Allowed && len(d.Violations) == 0:
		// A refusal nobody can act on, and one the merge would lose: the chain allows when no hook
		// reports a violation.
		return failed(h.Name(), errors.New("it refused without a violation saying why"))
	}
	return d
}

// failed is the refusal for a hook that could not judge.
func failed(hook string, err error) *policy.Decision {
	v := policy.Violation{
		Code:        CodeHookFailed,
		Field:       "hook." + hook,
		Severity:    policy.SeverityDeny,
		Message:     fmt.Sprintf("hook %s failed: %v", hook, err),
		Remediation: "fix or remove the hook " + hook + "; until then precheck refuses the call",
	}
	return &policy.Decision{
		Violations: []policy.Violation{v},
		Warnings:   []policy.Violation{},
		Error:      &policy.APIError{Status: HookFailedStatus, ErrorCode: CodeHookFailed, ErrorMsg: v.Message},
	}
}

// PolicyHook makes a policy engine (rego or wasm backend, or a compiled precheck.wasm through
// wasm.Config.Module) a hook.
func PolicyHook(name string, e *policy.Engine) Hook { return policyHook{name: name, e: e} }

type policyHook struct {
	name string
	e    *policy.Engine
}

func (h policyHook) Name() string { return h.name }

func (h policyHook) Run(ctx context.Context, doc *policy.Document) (*policy.Decision, error) {
	return h.e.CheckDocument(ctx, doc)
}
