//go:build race

package wasm_test

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
)

// raceDetector says the test binary runs under the race detector, which makes OPA's evaluator some ten
// times slower: the tests in withoutRace then run in a binary built without it (TestWithoutRace).
const raceDetector = true

// TestWithoutRace runs the tests in withoutRace with go test, built without the race detector, and fails
// with their output unless each of them ran and passed.
func TestWithoutRace(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	pattern := "^(" + strings.Join(withoutRace, "|") + ")$"
	cmd := exec.Command(goTool, "test", "-count=1", "-json", "-run", pattern, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=") // a -race meant for this binary is not for the other
	out, err := cmd.Output()
	passed := map[string]bool{}
	var output strings.Builder
	for line := range bytes.Lines(out) {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		output.WriteString(ev.Output)
		if ev.Action == "pass" && ev.Test != "" {
			passed[ev.Test] = true
		}
	}
	if err != nil {
		t.Fatalf("go test -run '%s' (without -race): %v\n%s", pattern, err, output.String())
	}
	for _, name := range withoutRace {
		if !passed[name] {
			t.Errorf("%s did not run and pass without -race:\n%s", name, output.String())
		}
	}
}

// decidedWithoutRace skips t, one of withoutRace, under the race detector: TestWithoutRace runs it.
func decidedWithoutRace(t testing.TB) {
	t.Helper()
	if !slices.Contains(withoutRace, t.Name()) {
		t.Fatalf("%s is not in withoutRace: it would run nowhere under -race", t.Name())
	}
	t.Skip("run by TestWithoutRace, in a binary built without the race detector")
}
