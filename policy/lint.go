package policy

import (
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Lint reports what a policy that loads may still get wrong, one problem per line with its file:line:col:
// what OPA's strict compiler refuses (unused variables, unused imports, shadowed names, deprecated builtins),
// rule packages without a title, rules without a description, codes the tests name that no rule has, and
// rules no test names. Loading already refuses rules without METADATA and duplicated codes.
func (p *Policy) Lint() []string {
	var problems []string
	modules := p.Modules()
	maps.Copy(modules, p.Tests())
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
	for _, m := range p.tests {
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
