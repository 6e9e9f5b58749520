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
