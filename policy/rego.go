package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Rego is the backend that evaluates with OPA's Go SDK (topdown): one prepared query per policy load,
// shared by all goroutines.
func Rego() Backend { return regoBackend{} }

type regoBackend struct{}

func (regoBackend) Name() string { return "rego" }

func (regoBackend) Prepare(ctx context.Context, p *Policy) (Evaluator, error) {
	p.prepared.once.Do(func() { p.prepared.pq, p.prepared.err = prepareRego(ctx, p) })
	if p.prepared.err != nil {
		return nil, p.prepared.err
	}
	return &regoEvaluator{pq: p.prepared.pq}, nil
}

func prepareRego(ctx context.Context, p *Policy) (rego.PreparedEvalQuery, error) {
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(inmem.NewFromObjectWithOpts(p.Data(), inmem.OptReturnASTValuesOnRead(true))),
		// The decision is built straight from OPA's AST, skipping the generic JSON conversion.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return decisionFromAST(t.Value) }),
	}
	for _, m := range p.evaluationModules() {
		opts = append(opts, rego.ParsedModule(m.Parsed))
	}
	// Not ctx: the query is shared by every engine of the policy, and must not fail for a caller that
	// gave up while it was being made.
	pq, err := rego.New(opts...).PrepareForEval(context.WithoutCancel(ctx))
	if err != nil {
		return pq, NewPolicyError(p.Source(), err)
	}
	return pq, nil
}

type regoEvaluator struct {
	pq rego.PreparedEvalQuery
}

func (r *regoEvaluator) Eval(ctx context.Context, doc *Document, now time.Time) (*Decision, error) {
	input, err := doc.Value()
	if err != nil {
		return nil, err
	}
	rs, err := r.pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(now))
	if err != nil {
		return nil, fmt.Errorf("rego: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("rego: %s is undefined", Query)
	}
	d, ok := rs[0].Expressions[0].Value.(*Decision)
	if !ok {
		return nil, fmt.Errorf("rego: %s is not a decision", Query)
	}
	return d, nil
}

func (r *regoEvaluator) Close(context.Context) error { return nil }

var (
	keyAllowed     = ast.InternedTerm("allowed")
	keyViolations  = ast.InternedTerm("violations")
	keyWarnings    = ast.InternedTerm("warnings")
	keyError       = ast.InternedTerm("error")
	keyStatus      = ast.InternedTerm("status")
	keyErrorCode   = ast.InternedTerm("error_code")
	keyErrorMsg    = ast.InternedTerm("error_msg")
	keyCode        = ast.InternedTerm("code")
	keyField       = ast.InternedTerm("field")
	keySeverity    = ast.InternedTerm("severity")
	keyMessage     = ast.InternedTerm("message")
	keyExpected    = ast.InternedTerm("expected")
	keyActual      = ast.InternedTerm("actual")
	keyRemediation = ast.InternedTerm("remediation")
)

// decisionFromAST reads data.precheck.decision as OPA's evaluator produced it. Members of the wrong type
// are an error: the policy, not the input, is then at fault.
func decisionFromAST(v ast.Value) (*Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("decision is %s, not an object", ast.ValueName(v))
	}
	d := &Decision{}
	allowed, ok := obj.Get(keyAllowed).Value.(ast.Boolean)
	if obj.Get(keyAllowed) == nil || !ok {
		return nil, errors.New("decision.allowed is not a boolean")
	}
	d.Allowed = bool(allowed)
	var err error
	if d.Violations, err = violationsFromAST(obj.Get(keyViolations), "violations"); err != nil {
		return nil, err
	}
	if d.Warnings, err = violationsFromAST(obj.Get(keyWarnings), "warnings"); err != nil {
		return nil, err
	}
	if t := obj.Get(keyError); t != nil {
		eo, ok := t.Value.(ast.Object)
		if !ok {
			return nil, errors.New("decision.error is not an object")
		}
		status, ok := eo.Get(keyStatus).Value.(ast.Number)
		if eo.Get(keyStatus) == nil || !ok {
			return nil, errors.New("decision.error.status is not a number")
		}
		n, ok := status.Int()
		if !ok {
			return nil, errors.New("decision.error.status is not an integer")
		}
		d.Error = &APIError{Status: n, ErrorCode: stringMember(eo, keyErrorCode), ErrorMsg: stringMember(eo, keyErrorMsg)}
	}
	return d, nil
}

func violationsFromAST(t *ast.Term, name string) ([]Violation, error) {
	if t == nil {
		return nil, nil
	}
	var out []Violation
	add := func(elem *ast.Term) error {
		o, ok := elem.Value.(ast.Object)
		if !ok {
			return fmt.Errorf("decision.%s holds %s, not objects", name, ast.ValueName(elem.Value))
		}
		out = append(out, Violation{
			Code:        stringMember(o, keyCode),
			Field:       stringMember(o, keyField),
			Severity:    stringMember(o, keySeverity),
			Message:     stringMember(o, keyMessage),
			Expected:    stringMember(o, keyExpected),
			Actual:      stringMember(o, keyActual),
			Remediation: stringMember(o, keyRemediation),
		})
		return nil
	}
	switch c := t.Value.(type) {
	case *ast.Array:
		out = make([]Violation, 0, c.Len())
		for i := range c.Len() {
			if err := add(c.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		for _, elem := range c.Slice() {
			if err := add(elem); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("decision.%s is %s, not an array", name, ast.ValueName(t.Value))
	}
	return out, nil
}

func stringMember(o ast.Object, key *ast.Term) string {
	if t := o.Get(key); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}
