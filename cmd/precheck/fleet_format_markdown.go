package main

import (
	"io"
	"strings"
)

// fleetMarkdown writes the report for a pull request, an issue or a wiki page: a summary table, what
// blocks clusters, and a table of the clusters in inventory order.
type fleetMarkdown struct{}

func (fleetMarkdown) writeFleet(w io.Writer, r *fleetReport, _ bool) error {
	p := &printer{w: w}
	s := r.Summary
	p.printf("# Fleet readiness\n\nPolicy %s, decided at %s.\n\n", mdCode(r.Policy), r.At)
	if s.CouldNotDecide > 0 {
		p.printf("| Clusters | Ready | Blocked | Could not decide |\n|---:|---:|---:|---:|\n| %d | %d | %d | %d |\n",
			s.Total, s.Ready, s.Blocked, s.CouldNotDecide)
	} else {
		p.printf("| Clusters | Ready | Blocked |\n|---:|---:|---:|\n| %d | %d | %d |\n", s.Total, s.Ready, s.Blocked)
	}
	reasons := func(head string, rs []fleetReason) {
		if len(rs) == 0 {
			return
		}
		p.printf("\n## %s\n\n| Code | Rule | Clusters |\n|---|---|---:|\n", head)
		for _, reason := range rs {
			p.printf("| %s | %s | %d |\n", mdCode(reason.Code), mdCell(reason.Title), reason.Clusters)
		}
	}
	reasons("Blocked by", s.BlockedBy)
	reasons("Warnings", s.WarnedBy)
	p.printf("\n## Clusters\n\n| # | Project | Cluster | Verdict | Reasons |\n|---:|---|---|---|---|\n")
	for i, c := range r.Clusters {
		verdict := c.Verdict
		if verdict != verdictReady {
			verdict = "**" + verdict + "**"
		}
		var reasons []string
		if c.Reason != "" {
			reasons = append(reasons, mdCell(c.Reason))
		}
		for _, v := range c.Violations {
			reasons = append(reasons, mdCode(v.Code)+" "+mdCell(v.Message))
		}
		for _, v := range c.Warnings {
			reasons = append(reasons, "warning "+mdCode(v.Code)+" "+mdCell(v.Message))
		}
		p.printf("| %d | %s | %s | %s | %s |\n", i+1, mdCode(c.ProjectID), mdCode(c.ClusterID), verdict, strings.Join(reasons, "<br>"))
	}
	return p.err
}

// mdCell makes text safe inside a markdown table cell, where < would start an HTML tag.
func mdCell(s string) string {
	return strings.ReplaceAll(cell(s), "<", "&lt;")
}

// mdCode is s as inline code in a table cell, or nothing when s is empty.
func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(cell(s), "`", "'") + "`"
}
