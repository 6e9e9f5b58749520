package main

import (
	"io"

	"github.com/precheck/precheck/policy"
)

// jsonFormat writes the decision exactly as the contract's JSON, for machines.
type jsonFormat struct{}

func (jsonFormat) writeDecision(w io.Writer, d *policy.Decision, _ bool) error {
	return writeJSON(w, d)
}

func (jsonFormat) writeExplained(w io.Writer, d *policy.Decision, x *policy.Explanation, _ bool) error {
	// The decision's members stay at the top level, so that a reader of decisions reads this one too.
	return writeJSON(w, struct {
		*policy.Decision
		Explanation *policy.Explanation `json:"explanation"`
	}{d, x})
}
