package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/precheck/precheck/plugin/facts"
	fleetlib "github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

// compareFormat writes an impact report (fleet --compare-policy).
type compareFormat interface {
	writeImpact(w io.Writer, r *impactReport, colour bool) error
}

var compareFormats = map[string]compareFormat{
	"text":     impactText{},
	"json":     impactJSON{},
	"markdown": impactMarkdown{},
}

// impactReport is what a policy change does to a fleet: the clusters whose verdict differs between the
// current and the proposed policy, judged at one instant, and the rules that make the difference. --format
// json writes it as it is.
type impactReport struct {
	Policy   string        `json:"policy"`   // the current policy's source
	Proposed string        `json:"proposed"` // the proposed policy's source
	At       string        `json:"at"`
	Summary  impactSummary `json:"summary"`
	// Rules has a member per rule that makes a difference to some cluster, most clusters first.
	Rules []impactRule `json:"rules"`
	// Changes are the clusters whose verdict differs, in inventory (or listing) order.
	Changes []impactChange `json:"changes"`
	// CouldNotDecide are the clusters (fleet --from-api) whose facts could not be gathered, so that
	// neither policy could judge them.
	CouldNotDecide []impactUndecided `json:"could_not_decide"`
}

type impactSummary struct {
	Clusters       int `json:"clusters"`
	Decided        int `json:"decided"`  // under both policies
	Blocks         int `json:"blocks"`   // ready now, blocked under the proposed policy
	Unblocks       int `json:"unblocks"` // blocked now, ready under the proposed policy
	CouldNotDecide int `json:"could_not_decide"`
	// Sentence says it in words: "this change blocks 37 clusters and unblocks 2; PRECHECK-VER-002 accounts
	// for 35".
	Sentence string `json:"sentence"`
}

type impactRule struct {
	Code     string `json:"code"`
	Title    string `json:"title"`
	Blocks   int    `json:"blocks"`
	Unblocks int    `json:"unblocks"`
}

type impactChange struct {
	ProjectID string `json:"project_id"`
	ClusterID string `json:"cluster_id"`
	Change    string `json:"change"` // changeBlocks or changeUnblocks
	// Rules are the codes that make the difference: denying under the proposed policy and not the current
	// one (blocks), or under the current one and not the proposed (unblocks).
	Rules []string `json:"rules"`
	// Findings are those rules' violations, under the policy where they deny.
	Findings []policy.Violation `json:"findings"`
}

type impactUndecided struct {
	ProjectID string `json:"project_id"`
	ClusterID string `json:"cluster_id"`
	Reason    string `json:"reason"`
}

const (
	changeBlocks   = "blocks"
	changeUnblocks = "unblocks"
)

func (c *impactChange) name() string {
	return (&fleetCluster{ProjectID: c.ProjectID, ClusterID: c.ClusterID}).name()
}

// compareRun is one `fleet --compare-policy`.
type compareRun struct {
	current, proposed       *policy.Policy
	currentEng, proposedEng *policy.Engine
	at                      time.Time
	inv                     *inventory
	reasons                 []string // for clusters that could not be gathered; nil from an inventory
	call                    facts.Encrypt
	workers                 int
	format                  string
	failOnNewBlocks         bool
}

// compareFleet decides every cluster under both policies and writes what changes.
func compareFleet(ctx context.Context, e *env, run compareRun) error {
	entries, _ := decidable(run.inv.Entries, run.reasons)
	imp, err := fleetlib.Compare(ctx, run.currentEng, run.proposedEng, entries, run.call, run.workers)
	if err != nil {
		return err
	}
	r := newImpactReport(run, imp)
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	if err := compareFormats[run.format].writeImpact(w, r, e.colour()); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// A cluster that could not be decided might be one the change blocks: a gate that passed it would pass
	// the change unseen (with expired credentials, say, every cluster).
	if run.failOnNewBlocks && (imp.Blocked > 0 || len(r.CouldNotDecide) > 0) {
		return silentExit(exitDenied)
	}
	return nil
}

func newImpactReport(run compareRun, imp *fleetlib.Impact) *impactReport {
	r := &impactReport{
		Policy:         run.current.Source(),
		Proposed:       run.proposed.Source(),
		At:             run.at.Format(time.RFC3339),
		Rules:          []impactRule{},
		Changes:        []impactChange{},
		CouldNotDecide: []impactUndecided{},
	}
	for i, reason := range run.reasons {
		if reason != "" {
			en := &run.inv.Entries[i]
			r.CouldNotDecide = append(r.CouldNotDecide, impactUndecided{ProjectID: en.ProjectID, ClusterID: en.ClusterID, Reason: reason})
		}
	}
	// A rule's title from the policy it denies under: a rule the change adds is only in the proposed one.
	title := func(code string) string {
		for _, p := range []*policy.Policy{run.proposed, run.current} {
			if rule, ok := p.Catalog().Lookup(code); ok {
				return rule.Title
			}
		}
		return code // a hook's finding
	}
	for _, ri := range imp.ByRule {
		r.Rules = append(r.Rules, impactRule{Code: ri.Code, Title: title(ri.Code), Blocks: ri.Blocks, Unblocks: ri.Unblocks})
	}
	for _, ch := range imp.Changes {
		c := impactChange{ProjectID: ch.ProjectID, ClusterID: ch.ClusterID, Change: changeBlocks, Rules: ch.Rules, Findings: []policy.Violation{}}
		deciding := ch.After
		if !ch.Blocked {
			c.Change, deciding = changeUnblocks, ch.Before
		}
		for _, v := range deciding.Violations {
			for _, code := range ch.Rules {
				if v.Code == code {
					c.Findings = append(c.Findings, v)
				}
			}
		}
		r.Changes = append(r.Changes, c)
	}
	r.Summary = impactSummary{
		Clusters: len(run.inv.Entries), Decided: imp.Decided, Blocks: imp.Blocked, Unblocks: imp.Unblocked,
		CouldNotDecide: len(r.CouldNotDecide),
	}
	r.Summary.Sentence = impactSentence(imp)
	return r
}

// impactSentence says the change in words: "this change blocks 37 clusters and unblocks 2;
// PRECHECK-VER-002 accounts for 35" (the rule that makes the difference to most clusters).
func impactSentence(imp *fleetlib.Impact) string {
	blocks := "blocks no cluster"
	if imp.Blocked > 0 {
		blocks = "blocks " + count(imp.Blocked, "cluster")
	}
	unblocks := "unblocks none"
	if imp.Unblocked > 0 {
		unblocks = fmt.Sprintf("unblocks %d", imp.Unblocked)
	}
	s := "this change " + blocks + " and " + unblocks
	if len(imp.ByRule) > 0 {
		top := imp.ByRule[0]
		s += fmt.Sprintf("; %s accounts for %d", top.Code, top.Blocks+top.Unblocks)
	}
	return s
}

// impactJSON writes the report as it is, for machines.
type impactJSON struct{}

func (impactJSON) writeImpact(w io.Writer, r *impactReport, _ bool) error { return writeJSON(w, r) }

// impactText writes the report for a person: the sentence first, then the rules, then every changed
// cluster with the findings that make its difference.
type impactText struct{}

func (impactText) writeImpact(w io.Writer, r *impactReport, terminal bool) error {
	p := &printer{w: w, color: terminal}
	s := r.Summary
	p.printf("%s %s\n", p.paint(bold, "IMPACT"), s.Sentence)
	p.printf("current policy %s, proposed %s, decided at %s\n", r.Policy, r.Proposed, r.At)
	p.printf("%s decided under both", count(s.Decided, "cluster"))
	if s.CouldNotDecide > 0 {
		p.printf(", %s", p.paint(yellow, fmt.Sprintf("%d %s", s.CouldNotDecide, verdictUndecided)))
	}
	p.printf("\n")
	if len(r.Rules) > 0 {
		p.printf("\n%s\n", p.paint(bold, "rules (blocks, unblocks)"))
		for _, rule := range r.Rules {
			p.printf("  %5d  %5d  %-19s %s\n", rule.Blocks, rule.Unblocks, rule.Code, rule.Title)
		}
	}
	section := func(change, head, color, mark string) {
		n := 0
		for i := range r.Changes {
			if r.Changes[i].Change == change {
				n++
			}
		}
		if n == 0 {
			return
		}
		p.printf("\n%s (%d)\n", p.paint(bold, head), n)
		for i := range r.Changes {
			c := &r.Changes[i]
			if c.Change != change {
				continue
			}
			p.printf("  %s  %s\n", c.name(), strings.Join(c.Rules, ", "))
			for _, v := range c.Findings {
				p.printf("           %s %-19s %s\n", p.paint(color, mark), v.Code, v.Message)
			}
		}
	}
	section(changeBlocks, "newly blocked (the proposed policy denies)", red, "x")
	section(changeUnblocks, "unblocked (the current policy denies)", green, "-")
	if len(r.CouldNotDecide) > 0 {
		p.printf("\n%s (%d)\n", p.paint(bold, verdictUndecided), len(r.CouldNotDecide))
		for _, u := range r.CouldNotDecide {
			p.printf("  %s\n           %s %s\n", (&fleetCluster{ProjectID: u.ProjectID, ClusterID: u.ClusterID}).name(), p.paint(yellow, "?"), u.Reason)
		}
	}
	return p.err
}

// impactMarkdown writes the report for a pull request comment: the sentence, the rules, and a table of the
// changed clusters.
type impactMarkdown struct{}

func (impactMarkdown) writeImpact(w io.Writer, r *impactReport, _ bool) error {
	p := &printer{w: w}
	s := r.Summary
	p.printf("# Policy impact\n\n**%s.**\n\n", capitalize(s.Sentence))
	p.printf("Current policy %s, proposed %s, decided at %s.\n\n", mdCode(r.Policy), mdCode(r.Proposed), r.At)
	p.printf("| Clusters | Decided | Blocks | Unblocks | Could not decide |\n|---:|---:|---:|---:|---:|\n| %d | %d | %d | %d | %d |\n",
		s.Clusters, s.Decided, s.Blocks, s.Unblocks, s.CouldNotDecide)
	if len(r.Rules) > 0 {
		p.printf("\n## Rules\n\n| Code | Rule | Blocks | Unblocks |\n|---|---|---:|---:|\n")
		for _, rule := range r.Rules {
			p.printf("| %s | %s | %d | %d |\n", mdCode(rule.Code), mdCell(rule.Title), rule.Blocks, rule.Unblocks)
		}
	}
	section := func(change, head string) {
		first := true
		for i := range r.Changes {
			c := &r.Changes[i]
			if c.Change != change {
				continue
			}
			if first {
				p.printf("\n## %s\n\n| Project | Cluster | Rules | Findings |\n|---|---|---|---|\n", head)
				first = false
			}
			codes := make([]string, len(c.Rules))
			for j, code := range c.Rules {
				codes[j] = mdCode(code)
			}
			var findings []string
			for _, v := range c.Findings {
				findings = append(findings, mdCode(v.Code)+" "+mdCell(v.Message))
			}
			p.printf("| %s | %s | %s | %s |\n", mdCode(c.ProjectID), mdCode(c.ClusterID), strings.Join(codes, ", "), strings.Join(findings, "<br>"))
		}
	}
	section(changeBlocks, "Newly blocked")
	section(changeUnblocks, "Unblocked")
	if len(r.CouldNotDecide) > 0 {
		p.printf("\n## Could not decide\n\n| Project | Cluster | Reason |\n|---|---|---|\n")
		for _, u := range r.CouldNotDecide {
			p.printf("| %s | %s | %s |\n", mdCode(u.ProjectID), mdCode(u.ClusterID), mdCell(u.Reason))
		}
	}
	return p.err
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
