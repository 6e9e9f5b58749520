package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Explanation says why a decision came out as it did: for each violation and warning, the rule that
// reported it (file:line), the members of the input and the data it read, and their values; and the rules
// that were checked and reported nothing. It is cheaper and clearer than OPA's trace because it is worked out
// from the rules themselves, once per policy, and filled in with the document's values.
type Explanation struct {
	Findings []ExplainedFinding `json:"findings"`
	Passed   []Rule             `json:"passed"`
}

// ExplainedFinding is one violation or warning with what decided it.
type ExplainedFinding struct {
	Violation Violation `json:"violation"`
	Rule      Rule      `json:"rule"`
	Reads     []Read    `json:"reads"`
}

// Read is one member a rule read, and its value in this decision (JSON, cut short).
type Read struct {
	Path    string `json:"path"`
	Value   string `json:"value,omitempty"`
	Missing bool   `json:"missing,omitempty"`
}

// Explain explains d, the decision on doc under p.
func (p *Policy) Explain(doc *Document, d *Decision) (*Explanation, error) {
	reads, err := p.ruleReads()
	if err != nil {
		return nil, err
	}
	var input any
	if err := json.Unmarshal(doc.JSON(), &input); err != nil {
		return nil, &InputError{Msg: err.Error()}
	}
	roots := map[string]any{"input": input, "data": p.data}
	e := &Explanation{Findings: []ExplainedFinding{}, Passed: []Rule{}}
	reported := map[string]bool{}
	for _, v := range slices.Concat(d.Violations, d.Warnings) {
		reported[v.Code] = true
		f := ExplainedFinding{Violation: v, Reads: []Read{}}
		f.Rule, _ = p.catalog.Lookup(v.Code) // a chain's hooks report codes the catalog does not have
		for _, path := range reads[v.Code] {
			f.Reads = append(f.Reads, lookup(roots, path))
		}
		e.Findings = append(e.Findings, f)
	}
	for _, r := range p.catalog.Rules {
		if !reported[r.Code] {
			e.Passed = append(e.Passed, r)
		}
	}
	return e, nil
}

// ruleReads works out, once per policy, which members of the input and the data each rule reads: the
// references in its body and head, followed through local variables, imports and the rules they name
// (lib.cluster is input.cluster) and through object.get(x, "key", default). It reads the rules as written,
// not as compiled, because the compiler splits the references it needs to follow.
func (p *Policy) ruleReads() (map[string][]string, error) {
	p.readsOnce.Do(func() {
		// On copies: the analysis and OPA's annotation set touch the modules they walk (an object's keys
		// are sorted on first use), and other goroutines copy and compile the policy's own meanwhile.
		modules := make([]bundle.ModuleFile, len(p.modules))
		for i, m := range p.modules {
			m.Parsed = m.Parsed.Copy()
			modules[i] = m
		}
		a := &readsAnalysis{rules: map[string][]*ast.Rule{}}
		for _, m := range modules {
			for _, r := range m.Parsed.Rules {
				path := m.Parsed.Package.Path.Extend(r.Head.Ref().StringPrefix()).String()
				a.rules[path] = append(a.rules[path], r)
			}
		}
		as, errs := ast.BuildAnnotationSet(parsedModules(modules))
		if len(errs) > 0 {
			p.readsErr = NewPolicyError(p.source, errs)
			return
		}
		p.reads = map[string][]string{}
		for _, m := range modules {
			if !m.Parsed.Package.Path.HasPrefix(rulesRoot) {
				continue
			}
			for _, r := range m.Parsed.Rules {
				annots := as.GetRuleScope(r)
				if len(annots) == 0 || r.Head.Name.String() != "findings" && r.Head.Ref().String() != "findings" {
					continue
				}
				code, _ := annots[0].Custom["code"].(string)
				paths := map[string]bool{}
				a.rule(r, paths, 0)
				p.reads[code] = mostSpecific(paths)
			}
		}
	})
	return p.reads, p.readsErr
}

func parsedModules(files []bundle.ModuleFile) []*ast.Module {
	out := make([]*ast.Module, len(files))
	for i, m := range files {
		out[i] = m.Parsed
	}
	return out
}

type readsAnalysis struct {
	rules map[string][]*ast.Rule // by full path: data.precheck.lib.cluster
}

// maxDepth bounds how far reads are followed through rules that name rules.
const maxDepth = 8

// scope resolves names within one rule: its module's imports and package, and its local assignments.
type scope struct {
	r      *ast.Rule
	locals map[ast.Var]*ast.Term
}

func newScope(r *ast.Rule) *scope {
	s := &scope{r: r, locals: map[ast.Var]*ast.Term{}}
	ast.WalkExprs(r.Body, func(e *ast.Expr) bool {
		if (e.IsAssignment() || e.IsEquality()) && len(e.Operands()) == 2 {
			if v, ok := e.Operands()[0].Value.(ast.Var); ok {
				s.locals[v] = e.Operands()[1]
			}
		}
		return false
	})
	return s
}

// rule adds what r's body and head read.
func (a *readsAnalysis) rule(r *ast.Rule, paths map[string]bool, depth int) {
	a.walk(newScope(r), r, paths, depth)
}

// walk adds what every reference, variable and call inside x reads, in scope s.
func (a *readsAnalysis) walk(s *scope, x any, paths map[string]bool, depth int) {
	if depth > maxDepth {
		return
	}
	ast.WalkTerms(x, func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Ref, ast.Var:
			for _, path := range a.resolve(s, t, depth) {
				paths[path] = true
			}
			if ref, ok := v.(ast.Ref); ok {
				for _, key := range ref[1:] { // a key that is itself a reference: by_project[input.request.project_id]
					if !ast.IsScalar(key.Value) {
						a.walk(s, key, paths, depth)
					}
				}
			}
			return true
		case ast.Call:
			found, ok := a.objectGet(s, v, depth)
			if !ok { // the operator is a builtin or a function, not a document: look at the arguments only
				for _, arg := range v[1:] {
					a.walk(s, arg, paths, depth)
				}
				return true
			}
			for _, p := range found {
				paths[p] = true
			}
			return true
		}
		return false
	})
}

// resolve names the input or data paths a term stands for, in scope s.
func (a *readsAnalysis) resolve(s *scope, t *ast.Term, depth int) []string {
	if depth > maxDepth {
		return nil
	}
	switch v := t.Value.(type) {
	case ast.Call:
		found, _ := a.objectGet(s, v, depth)
		return found
	case ast.Var:
		if v.IsWildcard() || v.IsGenerated() {
			return nil
		}
		return a.resolve(s, ast.RefTerm(t), depth)
	case ast.Ref:
		head, ok := v[0].Value.(ast.Var)
		if !ok {
			return nil
		}
		rest := v[1:]
		switch {
		case head == "input":
			return []string{ast.Ref(append([]*ast.Term{v[0]}, rest...)).StringPrefix().String()}
		case head == "data":
			return a.document(v.StringPrefix(), depth, true)
		case s.locals[head] != nil:
			var out []string
			for _, base := range a.resolve(s, s.locals[head], depth+1) {
				out = append(out, base+refSuffix(rest))
			}
			return out
		}
		for _, imp := range s.r.Module.Imports {
			if imp.Name().Equal(head) {
				path := imp.Path.Value.(ast.Ref)
				return a.document(path.Concat(rest).StringPrefix(), depth, true)
			}
		}
		// A rule of the rule's own package, or else a variable bound by iteration: nothing to follow.
		return a.document(s.r.Module.Package.Path.Append(ast.StringTerm(string(head))).Concat(rest).StringPrefix(), depth, false)
	}
	return nil
}

// document resolves a data path: a rule through what it is defined as, base data (when allowed) as itself.
func (a *readsAnalysis) document(ref ast.Ref, depth int, base bool) []string {
	for n := len(ref); n > 1; n-- {
		rules := a.rules[ref[:n].String()]
		if len(rules) == 0 {
			continue
		}
		var out []string
		for _, first := range rules {
			if len(first.Head.Args) > 0 {
				continue // a function reads what it is given
			}
			for r := first; r != nil; r = r.Else { // every branch of an else chain may decide
				if value := r.Head.Value; r.Head.Key == nil && value != nil && isSimple(value) {
					sc := newScope(r)
					for _, base := range a.resolve(sc, value, depth+1) {
						out = append(out, base+refSuffix(ref[n:]))
					}
					sub := map[string]bool{}
					a.walk(sc, r.Body, sub, depth+1) // the conditions read too
					for p := range sub {
						out = append(out, p)
					}
					continue
				}
				sub := map[string]bool{}
				a.rule(r, sub, depth+1)
				for p := range sub {
					out = append(out, p)
				}
			}
		}
		return out
	}
	if base && ref.HasPrefix(ast.DefaultRootRef) {
		return []string{ref.String()} // base data: a threshold, a class, a level
	}
	return nil
}

// objectGet resolves object.get(x, "key", default) to x's path and key.
func (a *readsAnalysis) objectGet(s *scope, call ast.Call, depth int) ([]string, bool) {
	if len(call) != 4 || call[0].String() != "object.get" {
		return nil, false
	}
	key, ok := call[2].Value.(ast.String)
	if !ok {
		return nil, false
	}
	var out []string
	for _, base := range a.resolve(s, call[1], depth+1) {
		out = append(out, base+"."+string(key))
	}
	return out, true
}

func isSimple(t *ast.Term) bool {
	switch t.Value.(type) {
	case ast.Ref, ast.Call, ast.Var:
		return true
	}
	return false
}

func refSuffix(r ast.Ref) string {
	var b strings.Builder
	for _, t := range r {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		b.WriteString("." + string(s))
	}
	return b.String()
}

// mostSpecific drops a path when a longer one under it is read too (input.cluster when
// input.cluster.version is), and rule paths that are not documents.
func mostSpecific(paths map[string]bool) []string {
	out := []string{}
	for p := range paths {
		covered := false
		for q := range paths {
			if q != p && strings.HasPrefix(q, p+".") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// lookup finds path ("input.cluster.version") in the documents and shows its value.
func lookup(roots map[string]any, path string) Read {
	parts := strings.Split(path, ".")
	cur, ok := roots[parts[0]]
	for _, part := range parts[1:] {
		m, isObject := cur.(map[string]any)
		if !ok || !isObject {
			ok = false
			break
		}
		cur, ok = m[part]
	}
	if !ok || cur == nil {
		return Read{Path: path, Missing: true}
	}
	data, err := json.Marshal(cur)
	if err != nil {
		return Read{Path: path, Value: fmt.Sprint(cur)}
	}
	value := string(data)
	if len(value) > 96 {
		value = value[:93] + "..."
	}
	return Read{Path: path, Value: value}
}

// explainState is the part of a Policy that Explain fills in on first use.
type explainState struct {
	readsOnce sync.Once
	reads     map[string][]string
	readsErr  error
}
