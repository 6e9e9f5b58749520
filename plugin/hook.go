package plugin

import (
	"context"
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

// NewChain returns a chain of the hooks, run in the order given.
func NewChain(hooks ...Hook) *Chain { return &Chain{hooks: slices.Clone(hooks)} }

// CheckDocument runs every hook (a refusal does not stop the others: the caller sees every reason at once)
// and merges their decisions: violations and warnings are concatenated and sorted; the call is allowed only
// if no hook refused; the error is that of the first hook, in chain order, that refused, with the messages of
// every violation.
func (c *Chain) CheckDocument(ctx context.Context, doc *policy.Document) (*policy.Decision, error) {
	merged := &policy.Decision{Allowed: true, Violations: []policy.Violation{}, Warnings: []policy.Violation{}}
	for _, h := range c.hooks {
		d, err := h.Run(ctx, doc)
		if err != nil {
			d = failed(h.Name(), err)
		}
		merged.Violations = append(merged.Violations, d.Violations...)
		merged.Warnings = append(merged.Warnings, d.Warnings...)
		if !d.Allowed && merged.Error == nil {
			merged.Error = &policy.APIError{Status: d.Error.Status, ErrorCode: d.Error.ErrorCode}
		}
	}
	if len(merged.Violations) == 0 {
		return merged, nil
	}
	merged.Allowed = false
	slices.SortFunc(merged.Violations, policy.CompareViolations)
	slices.SortFunc(merged.Warnings, policy.CompareViolations)
	if merged.Error == nil { // a hook reported violations yet allowed: refuse anyway
		merged.Error = &policy.APIError{Status: 403, ErrorCode: merged.Violations[0].Code}
	}
	msgs := make([]string, len(merged.Violations))
	for i, v := range merged.Violations {
		msgs[i] = v.Code + ": " + v.Message
	}
	merged.Error.ErrorMsg = strings.Join(msgs, "; ")
	return merged, nil
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
