package main

import (
	"cmp"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/precheck/precheck/policy"
)

// fleetSARIF writes the report as SARIF 2.1.0, for code-scanning dashboards: a rule for every code the
// report names (its title, description and fix from the policy's catalog) and a result for every finding,
// located at its cluster: physically at the cluster's entry in the inventory file (its URI relative to the
// working directory, as code scanning resolves it against the repository, and the entry's first line), and
// logically by a location named project/cluster.
type fleetSARIF struct{}

const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	precheckURI  = "https://github.com/precheck/precheck"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool          `json:"tool"`
	Results    []sarifResult      `json:"results"`
	Properties sarifRunProperties `json:"properties"`
}

type sarifRunProperties struct {
	Policy  string `json:"policy"`
	At      string `json:"at"`
	Total   int    `json:"total"`
	Ready   int    `json:"ready"`
	Blocked int    `json:"blocked"`
	// CouldNotDecide counts the clusters whose facts could not be gathered.
	CouldNotDecide int `json:"could_not_decide"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string     `json:"id"`
	ShortDescription sarifText  `json:"shortDescription"`
	FullDescription  *sarifText `json:"fullDescription,omitempty"`
	Help             sarifText  `json:"help"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string                `json:"ruleId"`
	RuleIndex  int                   `json:"ruleIndex"`
	Level      string                `json:"level"`
	Message    sarifText             `json:"message"`
	Locations  []sarifLocation       `json:"locations"`
	Properties sarifResultProperties `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           *sarifRegion          `json:"region,omitempty"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// sarifResultProperties carry what SARIF has no member for: the cluster's identifiers and the finding's
// input member, expected and actual values, and its fix.
type sarifResultProperties struct {
	ProjectID   string `json:"project_id"`
	ClusterID   string `json:"cluster_id"`
	Field       string `json:"field"`
	Expected    string `json:"expected,omitempty"`
	Actual      string `json:"actual,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

func (fleetSARIF) writeFleet(w io.Writer, r *fleetReport, _ bool) error {
	// The rules: every code the report names, once, by code; a code can deny one cluster and only warn on
	// another (a waiver, a tenant class's level).
	reasons := slices.Concat(r.Summary.BlockedBy, r.Summary.WarnedBy)
	if r.Summary.CouldNotDecide > 0 {
		reasons = append(reasons, fleetReason{Code: codeUndecided, Title: titleUndecided,
			Remediation: "fix what the reason names (credentials, permissions, the API's availability) and run the report again"})
	}
	slices.SortStableFunc(reasons, func(a, b fleetReason) int { return cmp.Compare(a.Code, b.Code) })
	reasons = slices.CompactFunc(reasons, func(a, b fleetReason) bool { return a.Code == b.Code })
	rules := make([]sarifRule, len(reasons))
	index := make(map[string]int, len(reasons))
	for i, reason := range reasons {
		rules[i] = sarifRule{ID: reason.Code, ShortDescription: sarifText{reason.Title}, Help: sarifText{reason.Remediation}}
		if reason.Description != "" {
			rules[i].FullDescription = &sarifText{reason.Description}
		}
		if reason.Remediation == "" {
			rules[i].Help.Text = reason.Title
		}
		index[reason.Code] = i
	}
	results := []sarifResult{}
	uri := sarifURI(r.inventory)
	for i := range r.Clusters {
		c := &r.Clusters[i]
		location := []sarifLocation{{LogicalLocations: []sarifLogicalLocation{{
			Name: c.ClusterID, FullyQualifiedName: c.name(), Kind: "resource",
		}}}}
		// An inventory read from stdin has no file to point at: its findings keep the logical location.
		if uri != "" {
			location[0].PhysicalLocation = &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: uri}}
			if c.line > 0 {
				location[0].PhysicalLocation.Region = &sarifRegion{StartLine: c.line}
			}
		}
		add := func(level string, v policy.Violation) {
			results = append(results, sarifResult{
				RuleID:    v.Code,
				RuleIndex: index[v.Code],
				Level:     level,
				Message:   sarifText{v.Message},
				Locations: location,
				Properties: sarifResultProperties{
					ProjectID: c.ProjectID, ClusterID: c.ClusterID,
					Field: v.Field, Expected: v.Expected, Actual: v.Actual, Remediation: v.Remediation,
				},
			})
		}
		if c.Verdict == verdictUndecided {
			add("error", policy.Violation{Code: codeUndecided, Field: "cluster", Message: verdictUndecided + ": " + c.Reason})
		}
		for _, v := range c.Violations {
			add("error", v)
		}
		for _, v := range c.Warnings {
			add("warning", v)
		}
	}
	return writeJSON(w, sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name: "precheck", InformationURI: precheckURI, Version: buildVersions().Precheck, Rules: rules,
			}},
			Results: results,
			Properties: sarifRunProperties{
				Policy: r.Policy, At: r.At, Total: r.Summary.Total, Ready: r.Summary.Ready, Blocked: r.Summary.Blocked,
				CouldNotDecide: r.Summary.CouldNotDecide,
			},
		}},
	})
}

// sarifURI is the inventory file as a URI reference: relative to the working directory (a repository's
// root, where code scanning runs), or an absolute file URI for a file outside it; "" for stdin.
func sarifURI(path string) string {
	if path == "" {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return (&url.URL{Path: filepath.ToSlash(path)}).String()
	}
	if cwd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(cwd, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return (&url.URL{Path: filepath.ToSlash(rel)}).String()
		}
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}
