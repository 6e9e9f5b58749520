package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Rule is one entry of the rule catalog: what a rule checks and what it reports, read from its METADATA.
type Rule struct {
	Code        string `json:"code"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Severity    string `json:"severity"` // the default level: deny or warn
	Status      int    `json:"status"`   // the HTTP status a gate answers when the rule denies
	Remediation string `json:"remediation"`
	Concern     string `json:"concern"` // the title of the rule's package
	Package     string `json:"package"`
	File        string `json:"file"`
	Line        int    `json:"line"`
}

// Catalog is the rule catalog of a policy, sorted by code. It is generated from the rules' METADATA,
// which is the single source of truth for codes, severities and remediations.
type Catalog struct {
	Rules []Rule `json:"rules"`
}

// Lookup returns the rule with the given code.
func (c *Catalog) Lookup(code string) (Rule, bool) {
	i, ok := slices.BinarySearchFunc(c.Rules, code, func(r Rule, code string) int { return strings.Compare(r.Code, code) })
	if !ok {
		return Rule{}, false
	}
	return c.Rules[i], true
}

// rulesRoot is where the decision looks for findings: every package under it contributes.
var rulesRoot = ast.MustParseRef("data.precheck.rules")

// codeForm keeps codes readable and stable: NAMESPACE-AREA-NNN (PRECHECK-VER-002, BANK-KEY-001).
var codeForm = regexp.MustCompile(`^[A-Z][A-Z0-9]*-[A-Z][A-Z0-9]*-[0-9]{3}$`)

// buildCatalog reads the METADATA of every findings rule under data.precheck.rules. A rule without a
// usable code, severity or remediation would silently never fire (its finding would be undefined), so each
// is a load error naming the rule's place.
func buildCatalog(modules []bundle.ModuleFile) (*Catalog, []string) {
	var problems []string
	mods := make([]*ast.Module, 0, len(modules))
	for _, m := range modules {
		mods = append(mods, m.Parsed)
	}
	as, errs := ast.BuildAnnotationSet(mods)
	for _, e := range errs {
		problems = append(problems, describeASTError(e))
	}
	if as == nil {
		return nil, problems
	}
	c := &Catalog{}
	seen := map[string]string{}
	for _, m := range modules {
		if !m.Parsed.Package.Path.HasPrefix(rulesRoot) {
			continue
		}
		concern := ""
		if a := as.GetPackageScope(m.Parsed.Package); a != nil {
			concern = a.Title
		}
		for _, r := range m.Parsed.Rules {
			if r.Head.Name.String() != "findings" && r.Head.Ref().String() != "findings" {
				continue
			}
			where := fmt.Sprintf("%s:%d:%d", r.Location.File, r.Location.Row, r.Location.Col)
			rule, problem := ruleFromAnnotations(as.GetRuleScope(r))
			if problem != "" {
				problems = append(problems, where+": "+problem)
				continue
			}
			if other, dup := seen[rule.Code]; dup {
				problems = append(problems, fmt.Sprintf("%s: rule code %s is already used at %s", where, rule.Code, other))
				continue
			}
			seen[rule.Code] = where
			rule.Concern = concern
			rule.Package = strings.TrimPrefix(m.Parsed.Package.Path.String(), "data.")
			rule.File, rule.Line = r.Location.File, r.Location.Row
			c.Rules = append(c.Rules, rule)
		}
	}
	slices.SortFunc(c.Rules, func(a, b Rule) int { return strings.Compare(a.Code, b.Code) })
	return c, problems
}

func ruleFromAnnotations(annots []*ast.Annotations) (Rule, string) {
	if len(annots) == 0 {
		return Rule{}, "findings rule has no METADATA (title, description, custom code, severity, status, remediation)"
	}
	a := annots[0]
	str := func(key string) string { s, _ := a.Custom[key].(string); return s }
	r := Rule{
		Code:        str("code"),
		Title:       a.Title,
		Description: strings.TrimSpace(a.Description),
		Severity:    str("severity"),
		Remediation: str("remediation"),
	}
	switch {
	case r.Code == "":
		return r, "METADATA has no custom.code"
	case !codeForm.MatchString(r.Code) || strings.HasPrefix(r.Code, "DWS"):
		return r, fmt.Sprintf("custom.code %q is not of the form NAMESPACE-AREA-NNN (and never DWS.*)", r.Code)
	case r.Title == "":
		return r, fmt.Sprintf("rule %s: METADATA has no title", r.Code)
	case r.Severity != SeverityDeny && r.Severity != SeverityWarn:
		return r, fmt.Sprintf("rule %s: custom.severity %q must be deny or warn", r.Code, r.Severity)
	case r.Remediation == "":
		return r, fmt.Sprintf("rule %s: METADATA has no custom.remediation", r.Code)
	}
	s, ok := a.Custom["status"]
	if !ok {
		return r, fmt.Sprintf("rule %s: METADATA has no custom.status", r.Code)
	}
	n, err := toInt(s)
	if err != nil || n < 400 || n > 499 {
		return r, fmt.Sprintf("rule %s: custom.status %v must be an HTTP 4xx status", r.Code, s)
	}
	r.Status = n
	return r, ""
}

func toInt(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case float64:
		if n == float64(int(n)) {
			return int(n), nil
		}
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	}
	return 0, fmt.Errorf("not an integer: %v", v)
}

// checkData refuses data the rules would misread: levels that are not deny/warn/off or name no rule, and
// minimum versions go-version cannot parse (the comparison would be undefined and the check would pass).
func checkData(data map[string]any, c *Catalog) []string {
	if c == nil {
		return nil
	}
	var problems []string
	pc, _ := data["precheck"].(map[string]any)
	if levels, ok := pc["levels"].(map[string]any); ok {
		checkLevels := func(where string, v any) {
			m, ok := v.(map[string]any)
			if !ok {
				problems = append(problems, where+": must be an object of rule code to level")
				return
			}
			for code, lv := range m {
				if _, ok := c.Lookup(code); !ok {
					problems = append(problems, fmt.Sprintf("%s: %s is not a rule code of this policy", where, code))
				}
				if l, _ := lv.(string); l != SeverityDeny && l != SeverityWarn && l != LevelOff {
					problems = append(problems, fmt.Sprintf("%s.%s: level %v must be deny, warn or off", where, code, lv))
				}
			}
		}
		if g, ok := levels["global"]; ok {
			checkLevels("data.precheck.levels.global", g)
		}
		if tc, ok := levels["tenant_classes"]; ok {
			classes, ok := tc.(map[string]any)
			if !ok {
				problems = append(problems, "data.precheck.levels.tenant_classes: must be an object of tenant class to levels")
			}
			for class, v := range classes {
				checkLevels("data.precheck.levels.tenant_classes."+class, v)
			}
		}
	}
	if w, ok := pc["waivers"]; ok {
		_, errs := ParseWaivers(w, c)
		problems = append(problems, errs...)
	}
	if cfg, ok := pc["config"].(map[string]any); ok {
		problems = append(problems, checkRequiredFacts(cfg["required_facts"])...)
		problems = append(problems, checkTenants(cfg["tenants"])...)
		for _, key := range []string{"min_cluster_version", "min_guest_agent_version"} {
			v, present := cfg[key]
			if !present {
				continue
			}
			s, _ := v.(string)
			if _, err := version.NewVersion(s); err != nil {
				problems = append(problems, fmt.Sprintf("data.precheck.config.%s: %v is not a version", key, v))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// checkTenants refuses a tenant mapping the rules would misread: a fallback or a mapping that names a class
// data does not define would leave the tenant with no allowed algorithms at all, reported only per call.
func checkTenants(v any) []string {
	if v == nil {
		return nil
	}
	const where = "data.precheck.config.tenants"
	t, ok := v.(map[string]any)
	if !ok {
		return []string{where + ": must be an object"}
	}
	classes, _ := t["classes"].(map[string]any)
	var problems []string
	class := func(at string, c any) {
		name, ok := c.(string)
		if _, defined := classes[name]; !ok || !defined {
			problems = append(problems, fmt.Sprintf("%s: %v is not a tenant class of %s.classes", at, c, where))
		}
	}
	fallback, present := t["fallback"]
	if !present {
		problems = append(problems, where+": has no fallback (the class of a tenant data does not classify)")
	} else {
		class(where+".fallback", fallback)
	}
	for _, by := range []string{"by_project", "by_enterprise_project"} {
		m, ok := t[by].(map[string]any)
		if !ok && t[by] != nil {
			problems = append(problems, fmt.Sprintf("%s.%s: must be an object of identifier to class", where, by))
		}
		for id, c := range m {
			class(fmt.Sprintf("%s.%s.%s", where, by, id), c)
		}
	}
	tags, ok := t["by_tag"].([]any)
	if !ok && t["by_tag"] != nil {
		problems = append(problems, where+".by_tag: must be a list of {key, value, class}")
	}
	for i, item := range tags {
		m, _ := item.(map[string]any)
		class(fmt.Sprintf("%s.by_tag[%d].class", where, i), m["class"])
	}
	return problems
}

// checkRequiredFacts refuses a required fact the rules could not look for: a typo in its member would
// otherwise silently stop the fact from being required.
func checkRequiredFacts(v any) []string {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return []string{"data.precheck.config.required_facts: must be a list"}
	}
	var problems []string
	for i, item := range list {
		where := fmt.Sprintf("data.precheck.config.required_facts[%d]", i)
		f, _ := item.(map[string]any)
		str := func(key string) string { s, _ := f[key].(string); return s }
		switch {
		case f == nil:
			problems = append(problems, where+": must be an object")
		case str("member") != "cluster" && str("member") != "key":
			problems = append(problems, fmt.Sprintf("%s: member %v must be cluster or key", where, f["member"]))
		case str("name") == "":
			problems = append(problems, where+": name must be a non-empty string")
		case !slices.Contains([]string{"string", "boolean", "number", "object", "array"}, str("type")):
			problems = append(problems, fmt.Sprintf("%s: type %v must be a JSON type (string, boolean, number, object, array)", where, f["type"]))
		case str("source") == "":
			problems = append(problems, where+": source must say where the fact comes from")
		}
	}
	return problems
}
