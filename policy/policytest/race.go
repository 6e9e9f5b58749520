package policytest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// WithoutRace names tests of a package that, in a test binary built with the race detector, run in a second
// binary of the package built without it. They are tests that decide or compile many policies on one
// goroutine: the race detector has nothing to find in them that the engines' concurrency tests do not
// exercise, and it makes OPA's evaluator and compiler some ten times slower. Each of them calls Delegate
// first, and one test of the package calls Run:
//
//	var withoutRace = policytest.WithoutRace{"TestDecisionsAsBefore", "FuzzDifferential"}
//
//	func TestWithoutRace(t *testing.T) { withoutRace.Run(t) }
//
//	func TestDecisionsAsBefore(t *testing.T) {
//		withoutRace.Delegate(t)
//		...
//	}
type WithoutRace []string

// GoCommand is the go command (the one on PATH, else the toolchain's) with args, for a test to run: with
// the test's environment, but for a -race in GOFLAGS, which is meant for the test binary, not for what the
// command builds.
func GoCommand(args ...string) *exec.Cmd {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, args...)
	cmd.Env = append(os.Environ(), "GOFLAGS="+withoutRaceFlag(os.Getenv("GOFLAGS")))
	return cmd
}

// withoutRaceFlag is GOFLAGS without a -race meant for this binary.
func withoutRaceFlag(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f != "-race" && f != "-race=true" && f != "--race" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// Delegate skips t under the race detector, where Run runs it; otherwise it does nothing.
func (w WithoutRace) Delegate(t testing.TB) {
	t.Helper()
	if !raceDetector {
		return
	}
	if !slices.Contains(w, t.Name()) {
		t.Fatalf("%s is not in the package's WithoutRace: under -race it would run nowhere", t.Name())
	}
	t.Skip("under -race this test runs in TestWithoutRace's binary, built without the race detector")
}

// forwardedFlags are the go test flags for the second binary: this run's -short, and its -timeout as what
// is left of it (at least a second: -timeout 0 would mean none), so that the tests run as this binary's
// would have.
func forwardedFlags(short bool, deadline time.Time, hasDeadline bool) []string {
	args := []string{"test", "-count=1", "-json"}
	if short {
		args = append(args, "-short")
	}
	if hasDeadline {
		args = append(args, "-timeout", max(time.Until(deadline), time.Second).Round(time.Second).String())
	}
	return args
}

// Run, under the race detector, runs w's tests with go test in the current directory (the package's),
// built without it and given this run's -short and what is left of its -timeout, and fails t with their
// output unless each of them ran and passed. Without the race detector it skips: the tests run in this
// binary.
func (w WithoutRace) Run(t *testing.T) {
	t.Helper()
	if !raceDetector {
		t.Skip("without the race detector, the tests run in this binary")
	}
	t.Parallel()
	pattern := "^(" + strings.Join(w, "|") + ")$"
	deadline, hasDeadline := t.Deadline()
	cmd := GoCommand(append(forwardedFlags(testing.Short(), deadline, hasDeadline), "-run", pattern, ".")...)
	out, err := cmd.Output()
	passed := map[string]bool{}
	var output strings.Builder
	for line := range bytes.Lines(out) {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(line, &ev) != nil {
			output.Write(line) // the go command's own words (a build failure)
			continue
		}
		output.WriteString(ev.Output)
		if ev.Action == "pass" && ev.Test != "" {
			passed[ev.Test] = true
		}
	}
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("go test -run '%s' (without -race): %v\n%s%s", pattern, err, output.String(), stderr)
	}
	for _, name := range w {
		if !passed[name] {
			t.Errorf("%s did not run and pass without -race:\n%s", name, output.String())
		}
	}
}
