package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Lint reports what a policy that loads may still get wrong, one problem per line with its file:line:col:
// what OPA's strict compiler refuses (unused variables, unused imports, shadowed names, deprecated builtins),
// rule packages without a title, rules without a description, codes the tests name that no rule has, and
// rules no test names. Loading already refuses rules without METADATA and duplicated codes; a test file
// that does not parse (loading does not parse the tests) is the one problem reported then.
func (p *Policy) Lint() []string {
	var problems []string
	tests, err := p.testsParsed()
	if err != nil {
		var pe *PolicyError
		if errors.As(err, &pe) {
			return pe.Problems
		}
		return []string{err.Error()}
	}
	modules := p.Modules()
	maps.Copy(modules, parsed(tests.files))
	c := ast.NewCompiler().WithStrict(true).WithCapabilities(ast.CapabilitiesForThisVersion())
	if c.Compile(copyModules(modules)); c.Failed() {
		for _, e := range c.Errors {
			problems = append(problems, describeASTError(e))
		}
	}

	as, _ := ast.BuildAnnotationSet(parsedModules(p.modules))
	for _, m := range p.modules {
		if m.Parsed.Package.Path.HasPrefix(rulesRoot) {
			if a := as.GetPackageScope(m.Parsed.Package); a == nil || a.Title == "" {
				problems = append(problems, fmt.Sprintf("%s: package %s has no METADATA title (the catalog groups rules by it)",
					at(m.Parsed.Package.Location), m.Parsed.Package.Path))
			}
		}
	}
	for _, r := range p.catalog.Rules {
		if r.Description == "" {
			problems = append(problems, fmt.Sprintf("%s:%d: rule %s has no METADATA description", r.File, r.Line, r.Code))
		}
	}

	named := map[string]bool{}
	for _, m := range tests.files {
		ast.WalkTerms(m.Parsed, func(t *ast.Term) bool {
			s, ok := t.Value.(ast.String)
			if !ok || !codeForm.MatchString(string(s)) {
				return false
			}
			named[string(s)] = true
			if _, known := p.catalog.Lookup(string(s)); !known {
				problems = append(problems, fmt.Sprintf("%s: code %s is not a rule code of this policy", at(t.Location), string(s)))
			}
			return false
		})
	}
	for _, r := range p.catalog.Rules {
		if !named[r.Code] {
			problems = append(problems, fmt.Sprintf("%s:%d: rule %s has no test naming it", r.File, r.Line, r.Code))
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

// LintWarnings reports what is legal but weaker than it looks: today, a cluster-tag mapping to a tenant class
// other than the fallback. The tenant sets its own cluster tags, so such a mapping is a hint the tenant
// controls: a stricter class lasts only while the tenant keeps the tag, a looser one is the tenant's to take.
func (p *Policy) LintWarnings() []string {
	pc, _ := p.data["precheck"].(map[string]any)
	cfg, _ := pc["config"].(map[string]any)
	tenants, _ := cfg["tenants"].(map[string]any)
	classes, _ := tenants["classes"].(map[string]any)
	fallback, _ := tenants["fallback"].(string)
	algorithms := func(class string) []string {
		c, _ := classes[class].(map[string]any)
		list, _ := c["algorithms"].([]any)
		var out []string
		for _, a := range list {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	base := algorithms(fallback)
	var warnings []string
	tags, _ := tenants["by_tag"].([]any)
	for i, item := range tags {
		m, _ := item.(map[string]any)
		class, _ := m["class"].(string)
		granted := algorithms(class)
		var effect string
		switch {
		case slices.Equal(granted, base):
			continue
		case isSubset(granted, base):
			effect = "stricter than the fallback: it lasts only while the tenant keeps the tag; classify the project or enterprise project instead"
		case isSubset(base, granted):
			effect = "looser than the fallback: any tenant can add the tag to get it"
		default:
			effect = "different from the fallback's, and the tenant chooses which by setting the tag"
		}
		warnings = append(warnings, fmt.Sprintf("data.precheck.config.tenants.by_tag[%d]: tag %v=%v maps to class %q (algorithms %v); the fallback is %q (%v): %s",
			i, m["key"], m["value"], class, granted, fallback, base, effect))
	}
	return warnings
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func at(loc *ast.Location) string {
	if loc == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d:%d", loc.File, loc.Row, loc.Col)
}

func copyModules(in map[string]*ast.Module) map[string]*ast.Module {
	out := make(map[string]*ast.Module, len(in))
	for k, m := range in {
		out[k] = m.Copy()
	}
	return out
}
