package main

import (
	"fmt"
	"io"

	"github.com/precheck/precheck/policy"
)

// fleetText writes the report for a person at a glance: the counts first, then what blocks clusters and
// how many, then every cluster in inventory order with its verdict and one line per finding. A warning
// that every cluster has (the irreversible restart) is said once, in the summary, rather than on every
// cluster's lines; the other formats repeat it for each cluster.
type fleetText struct{}

func (fleetText) writeFleet(w io.Writer, r *fleetReport, terminal bool) error {
	p := &printer{w: w, color: terminal}
	s := r.Summary
	undecided := ""
	if s.CouldNotDecide > 0 {
		undecided = ", " + p.paint(yellow, fmt.Sprintf("%d %s", s.CouldNotDecide, verdictUndecided))
	}
	p.printf("%s %s: %s, %s%s\n", p.paint(bold, "FLEET"), count(s.Total, "cluster"),
		p.paint(green, fmt.Sprintf("%d ready", s.Ready)), p.paint(red, fmt.Sprintf("%d blocked", s.Blocked)), undecided)
	p.printf("policy %s, decided at %s\n", r.Policy, r.At)
	everywhere := map[string]bool{} // warnings on every cluster
	reasons := func(head string, rs []fleetReason, warnings bool) {
		if len(rs) == 0 {
			return
		}
		p.printf("\n%s\n", p.paint(bold, head))
		for _, reason := range rs {
			note := ""
			if decided := s.Total - s.CouldNotDecide; warnings && reason.Clusters == decided && decided > 1 {
				everywhere[reason.Code] = true
				note = " (every cluster; not repeated below)"
				if s.CouldNotDecide > 0 {
					note = " (every cluster decided; not repeated below)"
				}
			}
			p.printf("  %5d  %-19s %s%s\n", reason.Clusters, reason.Code, reason.Title, note)
		}
	}
	reasons("blocked by (clusters, rule)", s.BlockedBy, false)
	reasons("warnings (clusters, rule)", s.WarnedBy, true)
	if len(r.Clusters) > 0 {
		p.printf("\n%s\n", p.paint(bold, "clusters"))
	}
	for i := range r.Clusters {
		c := &r.Clusters[i]
		verdict := p.paint(green, fmt.Sprintf("%-7s", c.Verdict))
		switch c.Verdict {
		case verdictBlocked:
			verdict = p.paint(red, fmt.Sprintf("%-7s", c.Verdict))
		case verdictUndecided:
			verdict = p.paint(yellow, c.Verdict)
		}
		p.printf("  %s  %s\n", verdict, c.name())
		if c.Reason != "" {
			p.printf("           %s %s\n", p.paint(yellow, "?"), c.Reason)
		}
		finding := func(color, mark string, v policy.Violation) {
			p.printf("           %s %-19s %s\n", p.paint(color, mark), v.Code, v.Message)
		}
		for _, v := range c.Violations {
			finding(red, "x", v)
		}
		for _, v := range c.Warnings {
			if !everywhere[v.Code] {
				finding(yellow, "!", v)
			}
		}
	}
	return p.err
}
