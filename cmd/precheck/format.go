package main

import (
	"encoding/json"
	"io"

	"github.com/precheck/precheck/policy"
)

// decisionFormat writes one decision. Each format is its own type in its own file (format_*.go).
type decisionFormat interface {
	writeDecision(w io.Writer, d *policy.Decision, terminal bool) error
	// writeExplained writes the decision with its explanation (check --explain).
	writeExplained(w io.Writer, d *policy.Decision, x *policy.Explanation, terminal bool) error
}

var decisionFormats = map[string]decisionFormat{
	"text": textFormat{},
	"json": jsonFormat{},
}

// writeJSON writes v as indented JSON without HTML escaping (messages hold <, > and &).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
