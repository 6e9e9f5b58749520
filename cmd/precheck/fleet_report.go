package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/precheck/precheck/policy"
)

// fleetReport is what `precheck fleet` finds: which clusters can be converted now and what blocks the rest.
// Every format writes it; --format json writes it as it is, so it reads back into this type unchanged.
type fleetReport struct {
	// Policy is where the policy came from; At is the instant every cluster was judged at (RFC 3339).
	Policy   string         `json:"policy"`
	At       string         `json:"at"`
	Summary  fleetSummary   `json:"summary"`
	Clusters []fleetCluster `json:"clusters"` // in inventory order
	// inventory is the inventory's file as given ("" for stdin), where SARIF locates the findings.
	inventory string
}

type fleetSummary struct {
	Total   int `json:"total"`
	Ready   int `json:"ready"`
	Blocked int `json:"blocked"`
	// CouldNotDecide counts the clusters whose facts could not be gathered (fleet --from-api): neither
	// ready nor blocked, and --fail-on-blocked fails on them as on a blocked one.
	CouldNotDecide int `json:"could_not_decide"`
	// BlockedBy counts, for each rule that denies some cluster, the clusters it blocks (a cluster blocked by
	// several rules counts for each); WarnedBy does the same for warnings. Most clusters first.
	BlockedBy []fleetReason `json:"blocked_by"`
	WarnedBy  []fleetReason `json:"warned_by"`
}

// fleetReason is one rule as the summary reports it, described from the policy's catalog.
type fleetReason struct {
	Code        string `json:"code"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Remediation string `json:"remediation,omitempty"`
	Clusters    int    `json:"clusters"`
}

type fleetCluster struct {
	ProjectID  string             `json:"project_id"`
	ClusterID  string             `json:"cluster_id"`
	Verdict    string             `json:"verdict"` // verdictReady, verdictBlocked or verdictUndecided
	Violations []policy.Violation `json:"violations"`
	Warnings   []policy.Violation `json:"warnings"`
	// Reason is why a cluster could not be decided: the failed call and its status.
	Reason string `json:"reason,omitempty"`
	// line is the line of the cluster's entry in the inventory (0 when not known).
	line int
}

const (
	verdictReady   = "ready"
	verdictBlocked = "blocked"
	// verdictUndecided is a cluster whose facts could not be gathered: never ready, and never dropped.
	verdictUndecided = "could not decide"
	// codeUndecided is the code SARIF and JUnit report an undecided cluster under: the gate's own refusal
	// for facts it could not gather (README, "Codes that are not rules"), which is what the call would get.
	codeUndecided  = "PRECHECK-GATE-001"
	titleUndecided = "the facts could not be gathered"
)

// name is how the formats name a cluster: project/cluster, as the API's path has them.
func (c *fleetCluster) name() string {
	if c.ProjectID == "" {
		return c.ClusterID
	}
	return c.ProjectID + "/" + c.ClusterID
}

// newFleetReport builds the report from the decisions, which are in the entries' order. A nil decision is a
// cluster that could not be decided, for the reason of the same index in reasons.
func newFleetReport(p *policy.Policy, at time.Time, inv *inventory, decisions []*policy.Decision, reasons []string) *fleetReport {
	entries := inv.Entries
	r := &fleetReport{
		Policy:    p.Source(),
		At:        at.Format(time.RFC3339),
		Clusters:  make([]fleetCluster, len(entries)),
		inventory: inv.source,
	}
	blocked, warned := map[string]int{}, map[string]int{}
	for i, d := range decisions {
		if d == nil {
			r.Clusters[i] = fleetCluster{
				ProjectID: entries[i].ProjectID, ClusterID: entries[i].ClusterID, Verdict: verdictUndecided,
				Violations: []policy.Violation{}, Warnings: []policy.Violation{}, Reason: reasons[i],
			}
			r.Summary.CouldNotDecide++
			continue
		}
		c := fleetCluster{
			ProjectID:  entries[i].ProjectID,
			ClusterID:  entries[i].ClusterID,
			Verdict:    verdictReady,
			Violations: d.Violations,
			Warnings:   d.Warnings,
		}
		if i < len(inv.lines) {
			c.line = inv.lines[i]
		}
		if !d.Allowed {
			c.Verdict = verdictBlocked
			r.Summary.Blocked++
		}
		countCodes(blocked, c.Violations)
		countCodes(warned, c.Warnings)
		r.Clusters[i] = c
	}
	r.Summary.Total = len(entries)
	r.Summary.Ready = r.Summary.Total - r.Summary.Blocked - r.Summary.CouldNotDecide
	catalog := p.Catalog()
	r.Summary.BlockedBy = fleetReasons(blocked, catalog)
	r.Summary.WarnedBy = fleetReasons(warned, catalog)
	return r
}

// countCodes counts each code of vs once.
func countCodes(counts map[string]int, vs []policy.Violation) {
	for i, v := range vs {
		if !slices.ContainsFunc(vs[:i], func(u policy.Violation) bool { return u.Code == v.Code }) {
			counts[v.Code]++
		}
	}
}

func fleetReasons(counts map[string]int, catalog *policy.Catalog) []fleetReason {
	reasons := make([]fleetReason, 0, len(counts))
	for code, n := range counts {
		r := fleetReason{Code: code, Title: code, Clusters: n}
		if rule, ok := catalog.Lookup(code); ok { // a hook's finding has no rule in the catalog
			r.Title, r.Description, r.Remediation = rule.Title, rule.Description, rule.Remediation
		}
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b fleetReason) int {
		return cmp.Or(cmp.Compare(b.Clusters, a.Clusters), cmp.Compare(a.Code, b.Code))
	})
	return reasons
}
