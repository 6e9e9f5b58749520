package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy"
)

// TestTenantDataIsChecked: a tenant mapping that names a class data does not define fails the load, naming
// the data path, instead of leaving that tenant with no allowed algorithm at all.
func TestTenantDataIsChecked(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, data, want string }{
		{"fallback undefined", `{"precheck": {"config": {"tenants": {"fallback": "bank"}}}}`,
			"data.precheck.config.tenants.fallback: bank is not a tenant class"},
		{"fallback not a string", `{"precheck": {"config": {"tenants": {"fallback": 1}}}}`,
			"data.precheck.config.tenants.fallback: 1 is not a tenant class"},
		{"project mapped to an undefined class", `{"precheck": {"config": {"tenants": {"by_project": {"p1": "bank"}}}}}`,
			"data.precheck.config.tenants.by_project.p1: bank is not a tenant class"},
		{"enterprise project mapping not an object", `{"precheck": {"config": {"tenants": {"by_enterprise_project": ["0"]}}}}`,
			"data.precheck.config.tenants.by_enterprise_project: must be an object"},
		{"tag mapped to an undefined class", `{"precheck": {"config": {"tenants": {"by_tag": [{"key": "k", "value": "v", "class": "bank"}]}}}}`,
			"data.precheck.config.tenants.by_tag[0].class: bank is not a tenant class"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"data.json": tt.data}))
			var pe *policy.PolicyError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("load: %v, want a policy error naming %q", err, tt.want)
			}
		})
	}
}

// TestLintWarnsOfTagMappings: a tag mapping is the tenant's to set or remove, so a class it grants other
// than the fallback is reported; one equal to the fallback is not.
func TestLintWarnsOfTagMappings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, data, want string }{
		{"default: a stricter class by tag", `{}`, `tag compliance=regulated maps to class "regulated" ([SMcompatible]); the fallback is "default" ([SMcompatible generalCipher]): stricter than the fallback`},
		{"a looser class by tag", `{"precheck": {"config": {"tenants": {"fallback": "regulated", "by_tag": [{"key": "tier", "value": "dev", "class": "default"}]}}}}`,
			`tag tier=dev maps to class "default" ([SMcompatible generalCipher]); the fallback is "regulated" ([SMcompatible]): looser than the fallback: any tenant can add the tag`},
		{"the fallback by tag", `{"precheck": {"config": {"tenants": {"fallback": "regulated"}}}}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"data.json": tt.data}))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(p.LintWarnings(), "\n")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("warnings %q, want none", got)
			case !strings.Contains(strings.ReplaceAll(got, "(algorithms ", "("), tt.want):
				t.Errorf("warnings %q, want %q", got, tt.want)
			}
		})
	}
}
