package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/policy"
)

// catalogFormat writes the rule catalog, with each rule's level as the policy's data sets it; one type
// per format.
type catalogFormat interface {
	writeCatalog(w io.Writer, rules []levelledRule) error
}

var catalogFormats = map[string]catalogFormat{
	"text":     catalogText{},
	"markdown": catalogMarkdown{},
	"json":     catalogJSON{},
}

func newRulesCmd(e *env) *cobra.Command {
	var (
		pf          policyFlags
		format      string
		waivers     bool
		at          time.Time
		staleWithin time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rules [POLICY]",
		Short: "Print the rule catalog, generated from the rules' METADATA",
		Long: `Print the rule catalog, generated from the rules' METADATA: each rule's code, level, HTTP
status, title and fix. The level is the one the policy's data sets (data.precheck.levels.global, else
the METADATA's severity); where data sets another for a tenant class (levels.tenant_classes), that
class's level is shown too.

The policy is the embedded default, or POLICY (or --policy), a directory or bundle layered over it.

--waivers lists the waivers in data instead, each active, stale (expiring within --stale-within) or
expired.

Exit codes: 0 printed, 1 with --waivers: a waiver has expired, 2 bad usage, 3 policy error.`,
		Example: `  precheck rules --format markdown
  precheck rules examples/policies/regulated-bank
  precheck rules --policy examples/policies/regulated-bank --waivers --at 2027-01-20 --stale-within 30d`,
		Args: pf.positional,
		RunE: func(*cobra.Command, []string) error {
			p, err := pf.load()
			if err != nil {
				return err
			}
			if !waivers {
				return catalogFormats[format].writeCatalog(e.stdout, effectiveLevels(p))
			}
			now := at
			if now.IsZero() {
				now = time.Now()
			}
			expired, err := writeWaivers(e, p.Waivers(), now, staleWithin, format)
			if err != nil {
				return err
			}
			if expired > 0 {
				// An expired waiver no longer waives: the rule denies again, which its owner must hear about.
				fmt.Fprintf(e.stderr, "precheck: %s expired\n", count(expired, "waiver"))
				return silentExit(exitDenied)
			}
			return nil
		},
	}
	pf.register(cmd, "")
	formatFlag(cmd, &format, catalogFormats)
	cmd.Flags().BoolVar(&waivers, "waivers", false, "list the waivers in data instead, with which are stale or expired")
	cmd.Flags().Var(timeValue{&at}, "at", "with --waivers: judge expiry at this time (RFC 3339 or a date) instead of now")
	durationFlag(cmd, &staleWithin, "stale-within", 14*24*time.Hour, "with --waivers: a waiver expiring within this is stale (14d, 36h)")
	return cmd
}

// levelledRule is a rule of the catalog with the level the policy's data gives it: globally, and for each
// tenant class whose level differs.
type levelledRule struct {
	policy.Rule
	Level        string            `json:"level"`
	ClassLevels  map[string]string `json:"tenant_class_levels,omitempty"`
	classesOrder []string
}

// effectiveLevels reads data.precheck.levels as the decision applies it: a tenant class's level wins over
// the global one, which wins over the METADATA's severity.
func effectiveLevels(p *policy.Policy) []levelledRule {
	pc, _ := p.Data()["precheck"].(map[string]any)
	levels, _ := pc["levels"].(map[string]any)
	global, _ := levels["global"].(map[string]any)
	byClass, _ := levels["tenant_classes"].(map[string]any)
	rules := make([]levelledRule, len(p.Catalog().Rules))
	for i, r := range p.Catalog().Rules {
		lr := levelledRule{Rule: r, Level: r.Severity}
		if l, ok := global[r.Code].(string); ok {
			lr.Level = l
		}
		for _, class := range slices.Sorted(maps.Keys(byClass)) {
			cl, _ := byClass[class].(map[string]any)
			if l, ok := cl[r.Code].(string); ok && l != lr.Level {
				if lr.ClassLevels == nil {
					lr.ClassLevels = map[string]string{}
				}
				lr.ClassLevels[class] = l
				lr.classesOrder = append(lr.classesOrder, class)
			}
		}
		rules[i] = lr
	}
	return rules
}

// levelText is the level with the tenant classes that differ: "warn (regulated: deny)".
func (r levelledRule) levelText() string {
	if len(r.ClassLevels) == 0 {
		return r.Level
	}
	parts := make([]string, len(r.classesOrder))
	for i, c := range r.classesOrder {
		parts[i] = c + ": " + r.ClassLevels[c]
	}
	return r.Level + " (" + strings.Join(parts, ", ") + ")"
}

// waiverStatus is a waiver as `rules --waivers` reports it.
type waiverStatus struct {
	policy.Waiver
	Status string `json:"status"`
}

// writeWaivers lists the waivers as they stand at now, and returns how many have expired.
func writeWaivers(e *env, ws []policy.Waiver, now time.Time, soon time.Duration, format string) (int, error) {
	list := make([]waiverStatus, len(ws))
	expired := 0
	for i, w := range ws {
		list[i] = waiverStatus{Waiver: w, Status: w.Status(now, soon)}
		if list[i].Status == "expired" {
			expired++
		}
	}
	if format == "json" {
		return expired, writeJSON(e.stdout, list)
	}
	p := &printer{w: e.stdout}
	if len(list) == 0 {
		p.printf("no waivers\n")
	}
	for _, w := range list {
		scope := make([]string, 0, len(w.Scope))
		for _, k := range policy.WaiverScopes {
			if v, ok := w.Scope[k]; ok {
				scope = append(scope, k+"="+v)
			}
		}
		p.printf("[%d] %-8s %s for %s, until %s, owner %s: %s\n", w.Index, w.Status, w.Rule, strings.Join(scope, " "), w.Expires, w.Owner, w.Reason)
	}
	return expired, p.err
}

type catalogText struct{}

func (catalogText) writeCatalog(w io.Writer, rules []levelledRule) error {
	p := &printer{w: w}
	for _, r := range rules {
		line := fmt.Sprintf("%-18s %-5s %d  %s", r.Code, r.Level, r.Status, r.Title)
		if len(r.ClassLevels) > 0 {
			line += "  [" + strings.TrimSuffix(strings.TrimPrefix(r.levelText(), r.Level+" ("), ")") + "]"
		}
		p.printf("%s\n", line)
	}
	return p.err
}

type catalogJSON struct{}

// writeCatalog writes the catalog as policy.Catalog has it, each rule with its levels added.
func (catalogJSON) writeCatalog(w io.Writer, rules []levelledRule) error {
	return writeJSON(w, struct {
		Rules []levelledRule `json:"rules"`
	}{rules})
}

// catalogMarkdown is the catalog as it stands in the README. It names each rule's file but not its line,
// so that editing a policy does not make the README stale unless a rule itself changed.
type catalogMarkdown struct{}

func (catalogMarkdown) writeCatalog(w io.Writer, rules []levelledRule) error {
	p := &printer{w: w}
	p.printf("| Code | Level | Status | Rule | What to do |\n|---|---|---|---|---|\n")
	for _, r := range rules {
		p.printf("| `%s` | %s | %d | **%s**: %s (%s, `%s`) | %s |\n",
			r.Code, r.levelText(), r.Status, r.Title, cell(r.Description), r.Concern, r.File, cell(r.Remediation))
	}
	return p.err
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
