package policytest

import "testing"

// Main: under the race detector, a run that passed exits without the detector's second of wait.
func TestMain(m *testing.M) { Main(m) }
