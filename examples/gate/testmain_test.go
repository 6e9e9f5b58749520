package main

import (
	"testing"

	"github.com/precheck/precheck/policy/policytest"
)

// policytest.Main: under the race detector, a run that passed exits without the detector's second of wait.
func TestMain(m *testing.M) { policytest.Main(m) }
