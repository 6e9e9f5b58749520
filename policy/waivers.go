package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Waiver turns a rule's deny into a warning for the calls its scope covers, until it expires. Waivers are
// data (data.precheck.waivers, a list); the policy applies them, and a malformed one fails the load.
type Waiver struct {
	Rule    string            `json:"rule"`
	Scope   map[string]string `json:"scope"`
	Reason  string            `json:"reason"`
	Owner   string            `json:"owner"`
	Expires string            `json:"expires"` // an RFC 3339 time, or a date: midnight UTC starting that day
	// Index is the waiver's position in data.precheck.waivers, from 0.
	Index int `json:"index"`
}

// WaiverScopes are the members a waiver's scope may name; each must match the call.
var WaiverScopes = []string{"cluster_id", "project_id", "tenant_class"}

// ExpiresAt is the first instant the waiver no longer applies.
func (w Waiver) ExpiresAt() time.Time {
	t, _ := parseExpiry(w.Expires) // checked when the policy loaded
	return t
}

// Status says what the waiver does at now: "active", "stale" (active, but expiring within soon), or
// "expired".
func (w Waiver) Status(now time.Time, soon time.Duration) string {
	switch exp := w.ExpiresAt(); {
	case !now.Before(exp):
		return "expired"
	case now.Add(soon).After(exp):
		return "stale"
	default:
		return "active"
	}
}

func parseExpiry(s string) (time.Time, error) {
	if strings.Contains(s, "T") {
		return time.Parse(time.RFC3339, s)
	}
	return time.Parse(time.DateOnly, s)
}

// Waivers returns the policy's waivers, in data order.
func (p *Policy) Waivers() []Waiver {
	pc, _ := p.data["precheck"].(map[string]any)
	ws, _ := ParseWaivers(pc["waivers"], p.catalog)
	return ws
}

// ParseWaivers reads data.precheck.waivers and reports every problem with its place: a waiver that names no
// rule of the catalog, has no reason, owner, scope or expiry, or an expiry that is no date.
func ParseWaivers(v any, c *Catalog) ([]Waiver, []string) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, []string{"data.precheck.waivers: must be a list of waivers"}
	}
	var out []Waiver
	var problems []string
	for i, item := range list {
		where := fmt.Sprintf("data.precheck.waivers[%d]", i)
		bad := func(format string, args ...any) { problems = append(problems, where+": "+fmt.Sprintf(format, args...)) }
		m, ok := item.(map[string]any)
		if !ok {
			bad("must be an object")
			continue
		}
		w := Waiver{Index: i, Scope: map[string]string{}}
		for key, val := range m {
			s, isString := val.(string)
			switch key {
			case "rule", "reason", "owner", "expires":
				if !isString || strings.TrimSpace(s) == "" {
					bad("%s must be a non-empty string", key)
				}
			case "scope":
			default:
				bad("unknown member %q (a waiver has rule, scope, reason, owner, expires)", key)
			}
			switch key {
			case "rule":
				w.Rule = s
			case "reason":
				w.Reason = s
			case "owner":
				w.Owner = s
			case "expires":
				w.Expires = s
			case "scope":
				scope, ok := val.(map[string]any)
				if !ok || len(scope) == 0 {
					bad("scope must name at least one of %s (to waive a rule everywhere, set its level)", strings.Join(WaiverScopes, ", "))
					continue
				}
				for sk, sv := range scope {
					ss, ok := sv.(string)
					switch {
					case !slices.Contains(WaiverScopes, sk):
						bad("scope.%s: a scope names only %s", sk, strings.Join(WaiverScopes, ", "))
					case !ok || ss == "":
						bad("scope.%s must be a non-empty string", sk)
					default:
						w.Scope[sk] = ss
					}
				}
			}
		}
		for _, key := range []string{"rule", "scope", "reason", "owner", "expires"} {
			if _, ok := m[key]; !ok {
				bad("has no %s", key)
			}
		}
		if w.Rule != "" && c != nil {
			if _, ok := c.Lookup(w.Rule); !ok {
				bad("rule %s is not a rule code of this policy", w.Rule)
			}
		}
		if w.Expires != "" {
			if _, err := parseExpiry(w.Expires); err != nil {
				bad("expires %q is not a date (2027-01-31) or an RFC 3339 time (2027-01-31T18:00:00+08:00)", w.Expires)
			}
		}
		out = append(out, w)
	}
	return out, problems
}
