package nodehost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
	"github.com/precheck/precheck/wasm"
)

// needNode skips the test on a machine that has not installed the host's dependencies, so that the README's
// `go test -race ./...` passes on a fresh checkout; in CI (CI set) it fails instead, so that the host is
// never silently untested there.
func needNode(t *testing.T) string {
	t.Helper()
	const hint = "run npm ci in examples/node-host"
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("node_modules", "@open-policy-agent", "opa-wasm", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Node.js host cannot run (%v): %s", err, hint)
		}
		t.Skipf("the Node.js host cannot run (%v): %s", err, hint)
	}
	return node
}

// runNode runs a script of the host and returns its output; a non-zero exit fails the test with it.
func runNode(t *testing.T, node string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, args...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		t.Fatalf("node %s: %v\n%s", strings.Join(args, " "), err, text)
	}
	t.Logf("node %s:\n%s", args[0], text)
}

// built is the default policy and its compilation as `precheck build` does it, once per test binary (the
// tests only read them).
var built = sync.OnceValues(func() (*compiledPolicy, error) {
	p, err := policy.Default()
	if err != nil {
		return nil, err
	}
	m, err := wasm.Compile(context.Background(), p)
	if err != nil {
		return nil, err
	}
	return &compiledPolicy{p, m}, nil
})

type compiledPolicy struct {
	policy *policy.Policy
	module *wasm.Module
}

func compiled(t *testing.T) (*policy.Policy, *wasm.Module) {
	t.Helper()
	c, err := built()
	if err != nil {
		t.Fatal(err)
	}
	return c.policy, c.module
}

// TestDecisions compiles the default policy as `precheck build` does, and has the Node.js host evaluate
// every example and corpus document with it on opa-wasm: each raw result must be precheck's decision
// after canonical JSON re-serialisation only, and without setData no document precheck denies may be
// allowed (check.js does both, for precheck.wasm and for the bundle, and reports every mismatch).
func TestDecisions(t *testing.T) {
	t.Parallel()
	node := needNode(t)
	ctx := t.Context()
	p, m := compiled(t)
	data, err := json.Marshal(p.Data())
	if err != nil {
		t.Fatal(err)
	}
	// One instant for both sides, so that waiver expiry (time.now_ns) cannot tell them apart.
	now := time.Now()
	engine, err := policy.New(ctx, p, policy.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(ctx)

	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("precheck.wasm", m.Wasm())
	write("data.json", data)
	var bundle bytes.Buffer
	if err := m.WriteBundle(&bundle); err != nil {
		t.Fatal(err)
	}
	write("bundle.tar.gz", bundle.Bytes())

	type manifestCase struct {
		Name     string `json:"name"`
		Input    string `json:"input"`
		Decision string `json:"decision"`
	}
	var cases []manifestCase
	for _, doc := range documents(t) {
		d, err := engine.CheckJSON(ctx, doc.JSON)
		if err != nil {
			t.Fatalf("%s: precheck gives no decision: %v", doc.Name, err)
		}
		decision, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		c := manifestCase{Name: doc.Name, Input: fmt.Sprintf("%03d.input.json", len(cases)), Decision: fmt.Sprintf("%03d.decision.json", len(cases))}
		write(c.Input, doc.JSON)
		write(c.Decision, decision)
		cases = append(cases, c)
	}
	manifest, err := json.Marshal(map[string]any{"now_ns": strconv.FormatInt(now.UnixNano(), 10), "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	write("manifest.json", manifest)

	runNode(t, node, "check.js", dir)
}

// TestCommand runs host.js as the README shows it, on a bundle: it prints the decision and exits as
// precheck check does, 0 allowed and 1 denied.
func TestCommand(t *testing.T) {
	t.Parallel()
	node := needNode(t)
	_, m := compiled(t)
	var bundle bytes.Buffer
	if err := m.WriteBundle(&bundle); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, bundle.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		input string
		exit  int
		code  string
	}{
		{"allowed-api-example.json", 0, `"allowed": true`},
		{"denied-guest-agent-too-old.json", 1, `"PRECHECK-VER-002"`},
	} {
		t.Run(c.input, func(t *testing.T) {
			t.Parallel()
			out, err := exec.CommandContext(t.Context(), node, "host.js", path, filepath.Join("..", "inputs", c.input)).Output()
			exit := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if exit != c.exit || !bytes.Contains(out, []byte(c.code)) {
				t.Errorf("node host.js bundle.tar.gz %s: exit %d, want %d, and output with %s:\n%s", c.input, exit, c.exit, c.code, out)
			}
		})
	}
}

// TestVersionTable checks the JavaScript dws.* builtins against policy/testdata/versions.json, the table
// policy's tests hold to hashicorp/go-version.
func TestVersionTable(t *testing.T) {
	t.Parallel()
	node := needNode(t)
	runNode(t, node, "versions.test.js")
}

// documents are the example inputs and the policy's corpus.
func documents(t *testing.T) []policytest.Document {
	t.Helper()
	docs, err := policytest.Documents("../..")
	if err != nil {
		t.Fatal(err)
	}
	return docs
}
