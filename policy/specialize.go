package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// The engines do not evaluate the modules as written: at load, what depends only on the policy itself (its
// METADATA and its data) is worked out once, so that no decision pays for it again. The rewrites keep the
// semantics exactly (the differential and golden tests hold both engines to the decisions of the modules
// as written), and they are made on copies: the catalog, the linter, `precheck test` and `precheck build`
// see the modules as written. A module built for other hosts (wasm.Compile, `precheck build`) is built from
// those too, since another host may load it with other data, or none.
//
//   - rego.metadata.rule().custom becomes the literal custom annotations of the rule (OPA's compiler would
//     otherwise build the rule's whole annotations object each time the rule is entered; its wasm code does
//     so at run time);
//   - a reference into the policy's data (data.precheck.config.algorithms, not a rule) becomes the literal
//     value, and so does a reference to a rule whose value is then a literal (lib.config.algorithms, with
//     lib.config := data.precheck.config): references through rules cost several times a literal in OPA's
//     evaluator, and a literal is what its rule index and its wasm planner can use;
//   - membership in a literal array (x in ["a", "b"]) becomes membership in the literal set, a lookup
//     rather than a scan.

// evaluation is the policy's modules as the engines evaluate them, made once per policy and engine kind.
type evaluation struct {
	once, wasmOnce       sync.Once
	modules, wasmModules []bundle.ModuleFile
}

// EvaluationModules returns the policy's modules as precheck's engines evaluate them (see the rewrites
// above), keyed by file path. They are shared: do not change them (OPA's compilers copy what they are
// given). OPA evaluating these, or the modules as written, gives the same decisions.
func (p *Policy) EvaluationModules() map[string]*ast.Module { return parsed(p.evaluationModules()) }

// EvaluationBundle is Bundle with the modules as the wasm engine compiles them for its own use. It holds
// only with the policy's data. It differs from EvaluationModules in one way: OPA's wasm code builds a
// composite literal ({...}, [...]) each time it is evaluated, while the data document is parsed once per
// instance, so a reference to a composite in data stays a reference into data (without the rules it went
// through) and only strings, numbers and booleans become literals.
func (p *Policy) EvaluationBundle() *bundle.Bundle {
	p.eval.wasmOnce.Do(func() { p.eval.wasmModules = specialize(p.modules, p.data, true) })
	files := p.eval.wasmModules
	modules := make([]bundle.ModuleFile, len(files))
	for i, m := range files {
		m.Parsed = m.Parsed.Copy()
		modules[i] = m
	}
	return &bundle.Bundle{Manifest: p.manifest, Data: p.data, Modules: modules}
}

func (p *Policy) evaluationModules() []bundle.ModuleFile {
	p.eval.once.Do(func() { p.eval.modules = specialize(p.modules, p.data, false) })
	return p.eval.modules
}

// specialize returns rewritten copies of modules (see above) for data; forWasm keeps composite values in
// data (see EvaluationBundle).
func specialize(files []bundle.ModuleFile, data map[string]any, forWasm bool) []bundle.ModuleFile {
	out := make([]bundle.ModuleFile, len(files))
	mods := make([]*ast.Module, len(files))
	for i, f := range files {
		f.Parsed = f.Parsed.Copy()
		out[i], mods[i] = f, f.Parsed
	}
	inlineMetadata(mods)
	if withOnData(mods) {
		// A rule evaluated under `with data.… as …` must see the value it is given, not the one inlined
		// from the data loaded; such a policy (none of precheck's own) keeps its references to data.
		return out
	}
	s := newSpecializer(mods, data)
	s.forWasm = forWasm
	// Each pass can make more rules literal (tenants := config.tenants once config is); a few passes reach
	// the fixed point of the default policy, and the loop stops as soon as a pass changes nothing.
	for range 8 {
		if !s.pass() {
			break
		}
	}
	if !forWasm { // a set literal is a lookup for topdown; wasm would build it each time
		for _, m := range mods {
			setsForMembership(m)
		}
	}
	return out
}

var regoMetadataRule = ast.RegoMetadataRule.Ref()

// inlineMetadata replaces rego.metadata.rule().custom in every rule that has rule-scope METADATA with the
// custom annotations, as OPA's compiler computes them (the annotation closest to the rule, its custom block
// through ast.InterfaceToValue).
func inlineMetadata(mods []*ast.Module) {
	as, errs := ast.BuildAnnotationSet(mods)
	if len(errs) > 0 {
		return // the policy loaded, so this does not happen; without the set, nothing is rewritten
	}
	for _, m := range mods {
		for _, rule := range m.Rules {
			for r := rule; r != nil; r = r.Else {
				// Each branch by itself, as OPA answers rego.metadata.rule() in it: an else branch has no
				// METADATA of its own, so it is left for OPA to answer.
				custom := primaryCustom(as, r)
				if custom == nil {
					continue
				}
				transformTerms(r, func(t *ast.Term) *ast.Term {
					ref, ok := t.Value.(ast.Ref)
					if !ok || len(ref) < 2 || !isMetadataRuleCall(ref[0]) || !ref[1].Equal(ast.InternedTerm("custom")) {
						return nil
					}
					return withRest(custom, ref[2:])
				})
			}
		}
	}
}

func isMetadataRuleCall(t *ast.Term) bool {
	call, ok := t.Value.(ast.Call)
	return ok && len(call) == 1 && call[0].Value.Compare(regoMetadataRule) == 0
}

// primaryCustom is the custom block of the rule's METADATA as rego.metadata.rule() gives it; nil when the
// rule has none (the call is then left for OPA to answer).
func primaryCustom(as *ast.AnnotationSet, rule *ast.Rule) *ast.Term {
	var primary *ast.Annotations
	for _, a := range as.GetRuleScope(rule) {
		if primary == nil || a.Location.Compare(primary.Location) < 0 {
			primary = a
		}
	}
	if primary == nil || len(primary.Custom) == 0 {
		return nil
	}
	v, err := ast.InterfaceToValue(primary.Custom)
	if err != nil {
		return nil
	}
	return ast.NewTerm(v)
}

// withRest is the term base, indexed by rest when there is any (a reference on a literal: {"a": x}.a).
func withRest(base *ast.Term, rest ast.Ref) *ast.Term {
	if len(rest) == 0 {
		return base
	}
	for len(rest) > 0 {
		next, ok := literalAt(base.Value, rest[0])
		if !ok {
			break
		}
		base, rest = next, rest[1:]
	}
	if len(rest) == 0 {
		return base
	}
	ref := make(ast.Ref, 0, 1+len(rest))
	ref = append(append(ref, base), rest...)
	return ast.NewTerm(ref)
}

// literalAt indexes a literal by a ground key, as a reference would; false when the key is not ground or
// the member is absent (the reference is then left to be evaluated, and is undefined).
func literalAt(v ast.Value, key *ast.Term) (*ast.Term, bool) {
	if !key.IsGround() {
		return nil, false
	}
	switch c := v.(type) {
	case ast.Object:
		t := c.Get(key)
		return t, t != nil
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil, false
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= c.Len() {
			return nil, false
		}
		return c.Elem(i), true
	}
	return nil, false
}

// specializer inlines data and literal rules.
type specializer struct {
	mods []*ast.Module
	data ast.Value
	// rulePaths are the paths under data that rules define (data.precheck.lib.config, ...): a reference
	// at or above one of them is not data alone.
	rulePaths []ast.Ref
	// literal maps the path of a rule whose value is a literal, or a reference into data (for wasm), to
	// that value.
	literal map[string]*ast.Term
	forWasm bool
}

func newSpecializer(mods []*ast.Module, data map[string]any) *specializer {
	s := &specializer{mods: mods, literal: map[string]*ast.Term{}}
	if v, err := ast.InterfaceToValue(data); err == nil {
		s.data = v
	}
	for _, m := range mods {
		for _, r := range m.Rules {
			s.rulePaths = append(s.rulePaths, ruleGroundPath(m, r))
		}
	}
	return s
}

// ruleGroundPath is the ground prefix of the rule's path: data.precheck.rules.request.findings.
func ruleGroundPath(m *ast.Module, r *ast.Rule) ast.Ref {
	path := m.Package.Path.Copy()
	for i, t := range r.Head.Ref() {
		if v, ok := t.Value.(ast.Var); ok && i == 0 {
			t = ast.StringTerm(string(v))
		}
		if _, ok := t.Value.(ast.String); !ok {
			break
		}
		path = append(path, t)
	}
	return path
}

// pass rewrites every module once and records the rules that became literals; it reports whether
// anything changed.
func (s *specializer) pass() bool {
	changed := false
	for _, m := range s.mods {
		aliases := importAliases(m)
		for _, rule := range m.Rules {
			for r := rule; r != nil; r = r.Else {
				transformTerms(r, func(t *ast.Term) *ast.Term {
					ref, ok := t.Value.(ast.Ref)
					if !ok {
						return nil
					}
					if out := s.inline(ref, aliases); out != nil {
						changed = true
						return out
					}
					return nil
				})
			}
		}
	}
	for _, m := range s.mods {
		for _, r := range m.Rules {
			if v := literalValue(s.mods, m, r); v != nil {
				key := ruleGroundPath(m, r).String()
				if _, ok := s.literal[key]; !ok {
					s.literal[key] = v
					changed = true
				}
			}
		}
	}
	return changed
}

// inline returns the literal ref stands for, or nil to leave it: a reference into data that no rule
// shares, or into a rule whose value is a literal.
func (s *specializer) inline(ref ast.Ref, aliases map[ast.Var]ast.Ref) *ast.Term {
	head, ok := ref[0].Value.(ast.Var)
	if !ok {
		return nil
	}
	var full ast.Ref
	switch {
	case head.Equal(ast.DefaultRootDocument.Value):
		full = ref
	case aliases[head] != nil:
		full = append(aliases[head].Copy(), ref[1:]...)
	default:
		return nil
	}
	// The longest ground prefix of full that names a literal rule, or data no rule shares.
	n := 1
	for n < len(full) && full[n].IsGround() {
		if _, ok := full[n].Value.(ast.String); !ok {
			break
		}
		n++
	}
	for i := n; i > 1; i-- {
		prefix := full[:i]
		if v, ok := s.literal[prefix.String()]; ok {
			if r, isRef := v.Value.(ast.Ref); isRef { // a rule that is a reference into data: go there
				return s.dataRef(append(r.Copy(), full[i:]...), ref)
			}
			return withRest(v, full[i:])
		}
		if s.data != nil && !s.sharedWithRules(prefix) {
			return s.dataRef(full, ref)
		}
	}
	return nil
}

// dataRef is what a reference into data (full, spelt ref in the module) becomes: the literal value, unless
// it is a composite for wasm; then the reference into data itself, if that is not what ref already says.
// Nil when full is not in data (the reference is undefined, and stays).
func (s *specializer) dataRef(full, ref ast.Ref) *ast.Term {
	n := 1
	for n < len(full) && full[n].IsGround() {
		if _, ok := full[n].Value.(ast.String); !ok {
			break
		}
		n++
	}
	v, ok := s.dataAt(full[:n])
	if !ok {
		return nil
	}
	switch v.Value.(type) {
	case ast.Object, *ast.Array, ast.Set:
		if s.forWasm {
			if full.Equal(ref) {
				return nil
			}
			return ast.NewTerm(full.Copy())
		}
	}
	return withRest(v, full[n:])
}

// sharedWithRules reports whether a rule is defined at, above or below path.
func (s *specializer) sharedWithRules(path ast.Ref) bool {
	for _, rp := range s.rulePaths {
		if rp.HasPrefix(path) || path.HasPrefix(rp) {
			return true
		}
	}
	return false
}

func (s *specializer) dataAt(path ast.Ref) (*ast.Term, bool) {
	cur := ast.NewTerm(s.data)
	for _, k := range path[1:] {
		next, ok := literalAt(cur.Value, k)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// literalValue is the value of a rule that is a literal: one complete definition (no default, no else, no
// function, no other rule at its path in any of mods), an empty body, a ground value.
func literalValue(mods []*ast.Module, m *ast.Module, r *ast.Rule) *ast.Term {
	if r.Default || r.Else != nil || len(r.Head.Args) > 0 || r.Head.Key != nil || r.Head.Value == nil {
		return nil
	}
	if len(r.Body) != 1 || !r.Body[0].Equal(ast.NewExpr(ast.BooleanTerm(true))) || !r.Head.Value.IsGround() {
		return nil
	}
	if !r.Head.Ref().IsGround() {
		return nil
	}
	path := ruleGroundPath(m, r)
	for _, om := range mods { // a package may span files: another may define the rule too
		for _, other := range om.Rules {
			if other != r && (ruleGroundPath(om, other).HasPrefix(path) || path.HasPrefix(ruleGroundPath(om, other))) {
				return nil
			}
		}
	}
	if ref, ok := r.Head.Value.Value.(ast.Ref); ok { // a reference into data, which dataRef left for wasm
		if ref.HasPrefix(ast.DefaultRootRef) {
			return r.Head.Value
		}
		return nil
	}
	if !isJSONValue(r.Head.Value.Value) {
		return nil
	}
	return r.Head.Value
}

// isJSONValue reports whether v holds only what JSON has: a rule's literal value may also be a set, which
// inlining would keep as it is; JSON values are what data holds and what the rewrite was made for.
func isJSONValue(v ast.Value) bool {
	switch c := v.(type) {
	case ast.Null, ast.Boolean, ast.Number, ast.String:
		return true
	case *ast.Array:
		ok := true
		c.Foreach(func(t *ast.Term) { ok = ok && isJSONValue(t.Value) })
		return ok
	case ast.Object:
		ok := true
		c.Foreach(func(k, v *ast.Term) {
			_, str := k.Value.(ast.String)
			ok = ok && str && isJSONValue(v.Value)
		})
		return ok
	}
	return false
}

// importAliases maps the names a module's imports of data bind to their paths.
func importAliases(m *ast.Module) map[ast.Var]ast.Ref {
	out := map[ast.Var]ast.Ref{}
	for _, imp := range m.Imports {
		ref, ok := imp.Path.Value.(ast.Ref)
		if !ok || !ref.HasPrefix(ast.DefaultRootRef) {
			continue
		}
		name := imp.Alias
		if name == "" {
			last, ok := ref[len(ref)-1].Value.(ast.String)
			if !ok {
				continue
			}
			name = ast.Var(last)
		}
		out[name] = ref
	}
	return out
}

var memberCall = ast.Member.Ref()

// setsForMembership turns the expression x in [literal array] (or its negation) into x in {literal set}:
// the same answer, as a lookup. It leaves some x in [...] alone: that iterates, in the array's order.
func setsForMembership(m *ast.Module) {
	ast.WalkExprs(m, func(e *ast.Expr) bool {
		if terms, ok := e.Terms.([]*ast.Term); ok && len(terms) == 3 && terms[0].Value.Compare(memberCall) == 0 {
			if set := literalSet(terms[2]); set != nil {
				terms[2] = set
			}
		}
		return false
	})
}

func literalSet(t *ast.Term) *ast.Term {
	arr, ok := t.Value.(*ast.Array)
	if !ok || !arr.IsGround() {
		return nil
	}
	elems := make([]*ast.Term, 0, arr.Len())
	arr.Foreach(func(e *ast.Term) { elems = append(elems, e) })
	return ast.SetTerm(elems...).SetLocation(t.Location)
}

// transformTerms replaces, everywhere in x (heads, bodies, comprehensions, else branches, with), the
// value of each term that f returns a replacement for (the term keeps its location); f sees the outermost
// terms first.
func transformTerms(x any, f func(*ast.Term) *ast.Term) {
	_, _ = ast.Transform(termTransformer(f), x)
}

type termTransformer func(*ast.Term) *ast.Term

// Transform is called with the values of terms (ast.Transform unwraps them), and with everything else.
// ast.Transform does not look into the symbols of a some declaration (some x in xs), so that is done here.
func (f termTransformer) Transform(x any) (any, error) {
	switch y := x.(type) {
	case ast.Value:
		if out := f(ast.NewTerm(y)); out != nil {
			return out.Value, nil
		}
	case *ast.SomeDecl:
		for _, sym := range y.Symbols {
			v, err := ast.Transform(f, sym.Value)
			if err != nil {
				return nil, err
			}
			sym.Value = v.(ast.Value)
		}
	}
	return x, nil
}

// withOnData reports whether any rule replaces part of data with the `with` keyword.
func withOnData(mods []*ast.Module) bool {
	found := false
	for _, m := range mods {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if ref, ok := w.Target.Value.(ast.Ref); ok && ref.HasPrefix(ast.DefaultRootRef) {
					found = true
				}
			}
			return found
		})
	}
	return found
}
