//go:build !race

package wasm_test

import "testing"

const raceDetector = false

// decidedWithoutRace does nothing without the race detector: the test runs here.
func decidedWithoutRace(testing.TB) {}
