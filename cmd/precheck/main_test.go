package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy"
)

var update = flag.Bool("update", false, "rewrite the README's generated rule catalog and the golden files")

// precheck runs the command in-process and returns its exit code and output.
func precheck(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// Each run has its own streams and an empty environment, so that tests can run in parallel.
	return precheckEnv(t, nil, false, stdin, args...)
}

func TestCheckExamples(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	files, _ := filepath.Glob("../../examples/inputs/*.json")
	if len(files) < 5 {
		t.Fatalf("only %d examples", len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want := exitDenied
			if strings.HasPrefix(name, "allowed-") {
				want = exitAllowed
			}
			code, out, errOut := precheck(t, "", "check", "--input", f, "--format", "json")
			if code != want {
				t.Fatalf("exit %d, want %d; stderr %s", code, want, errOut)
			}
			var d policy.Decision
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("json output: %v\n%s", err, out)
			}
			if d.Allowed != (want == exitAllowed) {
				t.Errorf("decision allowed=%v, exit %d", d.Allowed, code)
			}
		})
	}
}

func TestCheckTextOutput(t *testing.T) {
	t.Parallel()
	code, out, _ := precheck(t, "", "check", "--input", "../../examples/inputs/denied-guest-agent-too-old.json")
	if code != exitDenied {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"DENIED 1 violation",
		"PRECHECK-VER-002  cluster.guest_agent_version",
		"guestAgent version 8.3.0.199 is below the required 8.3.0.200",
		"expected >= 8.3.0.200, actual 8.3.0.199",
		"fix: upgrade the cluster's guestAgent to a version >= 8.3.0.200, then retry",
		"! PRECHECK-OPS-001  request",
		"a gate answers 409 PRECHECK-VER-002",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written to a non-terminal")
	}
	code, out, _ = precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json")
	if code != exitAllowed || !strings.HasPrefix(out, "ALLOWED the call may be made (1 warning)") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestCheckStdin(t *testing.T) {
	t.Parallel()
	doc, _ := os.ReadFile("../../examples/inputs/allowed-api-example.json")
	code, out, errOut := precheck(t, string(doc), "check", "--input", "-", "--format", "json")
	if code != exitAllowed || !strings.Contains(out, `"allowed": true`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestCheckFlags(t *testing.T) {
	t.Parallel()
	all := []string{"check",
		"--project-id", "89cd04f168b84af6be287f71730fdb4b", "--cluster-id", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"--algorithm", "SMcompatible", "--key-id", "0f3196c8-5c23-469f-84da-92ecd2499dce",
		"--cluster-version", "8.1.3.310", "--agent-version", "8.3.0.200", "--status", "AVAILABLE", "--task-status", "",
		"--encrypted=false", "--dr=false", "--tenant-class", "regulated", "--format", "json"}
	code, out, errOut := precheck(t, "", all...)
	if code != exitAllowed {
		t.Fatalf("all facts by flags: exit %d\n%s\n%s", code, out, errOut)
	}
	// A fact no flag gives stays unknown, and unknown is a refusal.
	code, out, _ = precheck(t, "", "check", "--algorithm", "SMcompatible", "--format", "json")
	if code != exitDenied || !strings.Contains(out, "cluster.guest_agent_version is unknown") {
		t.Errorf("facts missing: exit %d\n%s", code, out)
	}
	// Flags win over the file.
	code, out, _ = precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--agent-version", "8.3.0.199")
	if code != exitDenied || !strings.Contains(out, "8.3.0.199 is below") {
		t.Errorf("flag over file: exit %d\n%s", code, out)
	}
	code, out, _ = precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--encrypted")
	if code != exitDenied || !strings.Contains(out, "PRECHECK-CLU-003") {
		t.Errorf("--encrypted: exit %d\n%s", code, out)
	}
}

func TestCheckBadUsageAndInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	malformed := filepath.Join(dir, "malformed.json")
	os.WriteFile(malformed, []byte("{\n  \"request\": {\n    \"project_id\": 12,,\n  }\n}\n"), 0o644)
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(huge, []byte(`{"x": "`+strings.Repeat("a", 2<<20)+`"}`), 0o644)
	deep := filepath.Join(dir, "deep.json")
	os.WriteFile(deep, []byte(strings.Repeat("[", 100)+strings.Repeat("]", 100)), 0o644)
	deepObj := filepath.Join(dir, "deep-object.json")
	os.WriteFile(deepObj, []byte(`{"request": {"body":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}}`), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed JSON", []string{"check", "--input", malformed}, "line 3, column 22: malformed JSON"},
		{"over 1 MiB", []string{"check", "--input", huge}, "over the limit of 1048576 bytes"},
		{"not an object", []string{"check", "--input", deep}, "must be a JSON object"},
		{"too deep", []string{"check", "--input", deepObj}, "nested deeper than the limit of 32 levels"},
		{"missing file", []string{"check", "--input", filepath.Join(dir, "nope.json")}, "no such file"},
		{"no input", []string{"check"}, "no input"},
		{"unknown flag", []string{"check", "--nope"}, "unknown flag: --nope; see 'precheck check --help'"},
		{"misspelt flag", []string{"check", "--inptu", "x.json"}, "unknown flag: --inptu (did you mean --input?)"},
		{"bad bool", []string{"check", "--encrypted=maybe"}, "want true or false"},
		{"unknown engine", []string{"check", "--input", malformed, "--engine", "jit"}, `unknown engine "jit"`},
		{"unknown format", []string{"check", "--input", malformed, "--format", "xml"}, `unknown format "xml"`},
		{"stray argument", []string{"check", "file.json"}, "unexpected argument"},
		{"unknown command", []string{"chekc"}, `unknown command "chekc" (did you mean "check"?); see 'precheck --help'`},
		{"no command", nil, "Available Commands:"},
		{"bad --at", []string{"check", "--at", "tomorrow"}, `"tomorrow" is neither an RFC 3339 time`},
		{"bool as a stray value", []string{"check", "--explain", "false"}, `unexpected argument "false"`},
		{"missing policy", []string{"check", "--policy", "nosuchdir"}, "--policy nosuchdir: no such file or directory"},
		{"no-default alone", []string{"rules", "--no-default"}, "--no-default needs --policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := precheck(t, "", tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\n%s", code, exitUsage, out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, errOut)
			}
		})
	}
}

func TestBrokenPolicyIsExit3(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	code, _, errOut := precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--policy", dir)
	if code != exitPolicy || !strings.Contains(errOut, "broken.rego:3:6: rego_unsafe_var_error") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package precheck.rules.broken\n\nx := [\n"), 0o644)
	code, _, errOut = precheck(t, "", "rules", "--policy", dir)
	if code != exitPolicy || !strings.Contains(errOut, "broken.rego:4:0: rego_parse_error") {
		t.Errorf("parse error: exit %d, stderr:\n%s", code, errOut)
	}
	// A policy path that is not there is a mistake in the command line, not a broken policy.
	code, _, errOut = precheck(t, "", "check", "--input", "x.json", "--policy", filepath.Join(dir, "missing"))
	if code != exitUsage || !strings.Contains(errOut, "missing") {
		t.Errorf("missing policy: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestPolicyFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"config": {"min_cluster_version": "9.0.0"}}}`), 0o644)
	code, out, _ := precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--policy", dir)
	if code != exitDenied || !strings.Contains(out, "8.1.3.310 is below the required 9.0.0") {
		t.Errorf("--policy overrides: exit %d\n%s", code, out)
	}
	code, _, errOut := precheck(t, "", "rules", "--policy", dir, "--no-default")
	if code != exitPolicy || !strings.Contains(errOut, "no Rego modules") {
		t.Errorf("--no-default with a data-only dir: exit %d\n%s", code, errOut)
	}
}

// TestTestVerb runs the verb on a few tests each time: the whole Rego suite is rego/'s own test's.
func TestTestVerb(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	code, out, errOut := precheck(t, "", "test", "--coverage", "--run", "test_builtins", "-v")
	if code != exitAllowed || !strings.Contains(out, "PASS: ") || !strings.Contains(out, "coverage: ") || !strings.Contains(out, "decision.rego") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = precheck(t, "", "test", "--coverage", "--run", "test_builtins", "--threshold", "100.1")
	if code != exitDenied || !strings.Contains(errOut, "below the threshold") {
		t.Errorf("threshold: exit %d\n%s", code, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "wrong_test.rego"), []byte(`package wrong_test

import data.precheck.testing as t

test_example_is_denied if {
	not t.decide(t.allowed_input).allowed
}
`), 0o644)
	code, out, _ = precheck(t, "", "test", "--policy", dir, "--run", "is_denied")
	if code != exitDenied || !strings.Contains(out, "test_example_is_denied: FAIL") || !strings.Contains(out, "wrong_test.rego:5") {
		t.Errorf("failing test: exit %d\n%s", code, out)
	}
	code, out, _ = precheck(t, "", "test", "--run", "test_builtins", "--format", "json")
	if code != exitAllowed || !strings.Contains(out, `"name": "test_builtins"`) {
		t.Errorf("json: exit %d\n%s", code, out)
	}
	code, _, errOut = precheck(t, "", "test", "--run", "no_such_test")
	if code != exitDenied || !strings.Contains(errOut, "no tests found") {
		t.Errorf("no tests: exit %d\n%s", code, errOut)
	}
}

func TestRulesVerb(t *testing.T) {
	t.Parallel()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "markdown", "json"} {
		code, out, errOut := precheck(t, "", "rules", "--format", format)
		if code != exitAllowed {
			t.Fatalf("%s: exit %d %s", format, code, errOut)
		}
		for _, r := range p.Catalog().Rules {
			if !strings.Contains(out, r.Code) {
				t.Errorf("%s catalog lacks %s", format, r.Code)
			}
		}
	}
}

// TestREADMECatalogIsCurrent fails when the rule catalog checked into the README is not what
// `precheck rules --format markdown` generates from the METADATA today.
func TestREADMECatalogIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- rules:begin (generated by: precheck rules --format markdown) -->\n", "<!-- rules:end -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README has no %q ... %q section", begin, end)
	}
	_, want, _ := precheck(t, "", "rules", "--format", "markdown")
	if *update {
		s = s[:i+len(begin)] + want + s[j:]
		if err := os.WriteFile("../../README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := s[i+len(begin) : j]; got != want {
		t.Errorf("the README's rule catalog is stale; regenerate it with: go test ./cmd/precheck -run README -update\n--- README\n%s\n--- generated\n%s", got, want)
	}
}

// TestREADMEQuickStart keeps the README's Quick start true: exactly two commands, the first checking an
// example with the embedded default policy (run here in-process), the second the test command CI runs.
func TestREADMEQuickStart(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Quick start")
	if i < 0 {
		t.Fatal("README has no Quick start")
	}
	block := s[i:]
	block = block[strings.Index(block, "```")+3:]
	block = block[strings.Index(block, "\n")+1 : strings.Index(block, "```")]
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("Quick start has %d commands, want 2: %q", len(cmds), cmds)
	}
	first := strings.Fields(cmds[0])
	if len(first) < 4 || strings.Join(first[:3], " ") != "go run ./cmd/precheck" || first[3] != "check" {
		t.Fatalf("first command %q does not run precheck check", cmds[0])
	}
	args := first[3:]
	for k, a := range args {
		if strings.HasPrefix(a, "examples/") {
			args[k] = "../../" + a
		}
	}
	if code, out, errOut := precheck(t, "", args...); code != exitAllowed {
		t.Errorf("%s: exit %d\n%s%s", cmds[0], code, out, errOut)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), cmds[1]) {
		t.Errorf(".ci/run does not run the README's test command %q", cmds[1])
	}
}

// TestWasmEngineMatchesRego: --engine wasm gives the same output and exit code as --engine rego on every
// example, in both formats.
func TestWasmEngineMatchesRego(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../examples/inputs/*.json")
	for _, f := range files {
		for _, format := range []string{"json", "text"} {
			codeR, outR, errR := precheck(t, "", "check", "--input", f, "--format", format, "--engine", "rego")
			codeW, outW, errW := precheck(t, "", "check", "--input", f, "--format", format, "--engine", "wasm")
			if codeR != codeW || outR != outW || errR != errW {
				t.Errorf("%s (%s): rego exit %d, wasm exit %d\n--- rego\n%s%s\n--- wasm\n%s%s", filepath.Base(f), format, codeR, codeW, outR, errR, outW, errW)
			}
		}
	}
}

func TestBuildVerb(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dir := t.TempDir()
	mod, bundlePath := filepath.Join(dir, "precheck.wasm"), filepath.Join(dir, "bundle.tar.gz")
	code, out, errOut := precheck(t, "", "build", "-o", mod, "--bundle", bundlePath)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	data, err := os.ReadFile(mod)
	if err != nil || !bytes.HasPrefix(data, []byte("\x00asm")) {
		t.Fatalf("%s is not a wasm module: %v", mod, err)
	}
	if !strings.Contains(out, "entrypoint precheck/decision") {
		t.Errorf("output: %s", out)
	}
	// The bundle is a policy precheck can load too (its Rego sources travel with it).
	code, _, errOut = precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--policy", bundlePath, "--no-default", "--engine", "wasm")
	if code != exitAllowed {
		t.Errorf("checking with the built bundle: exit %d\n%s", code, errOut)
	}
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	code, _, errOut = precheck(t, "", "build", "-o", filepath.Join(dir, "broken.wasm"), "--policy", broken)
	if code != exitPolicy || !strings.Contains(errOut, "broken.rego:3:6") {
		t.Errorf("broken policy: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "broken.wasm")); !os.IsNotExist(err) {
		t.Error("a failed build left a module behind")
	}
}

// TestExplainGolden compares `check --explain` with golden files (go test -run Golden -update rewrites them).
func TestExplainGolden(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		input, golden string
		code          int
	}{
		{"allowed-api-example.json", "explain-allowed.golden", exitAllowed},
		{"denied-regulated-general-cipher.json", "explain-denied.golden", exitDenied},
		{"denied-cluster-busy.json", "explain-busy.golden", exitDenied},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := precheck(t, "", "check", "--input", "../../examples/inputs/"+tt.input, "--explain")
			if code != tt.code {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			golden(t, tt.golden, out)
		})
	}
	code, out, _ := precheck(t, "", "check", "--input", "../../examples/inputs/denied-guest-agent-too-old.json", "--explain", "--format", "json")
	// The decision's members at the top level, as without --explain, and the explanation beside them.
	var doc struct {
		policy.Decision
		Explanation policy.Explanation `json:"explanation"`
	}
	if code != exitDenied || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Explanation.Findings) != 2 {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
	if doc.Allowed || len(doc.Violations) != 1 || doc.Violations[0].Code != "PRECHECK-VER-002" || doc.Error == nil {
		t.Errorf("the decision is not at the top level: %+v", doc.Decision)
	}
	var members map[string]json.RawMessage
	json.Unmarshal([]byte(out), &members)
	if _, ok := members["decision"]; ok || len(members) != 5 {
		t.Errorf("top-level members %v, want allowed, violations, warnings, error, explanation", slices.Sorted(maps.Keys(members)))
	}
	reads := doc.Explanation.Findings[0].Reads // violations first, then warnings
	if len(reads) != 2 || reads[1].Path != "input.cluster.guest_agent_version" || reads[1].Value != `"8.3.0.199"` {
		t.Errorf("reads %+v", reads)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestFmtAndLintThePolicies: the default policy and the example override are formatted and lint clean (CI
// also runs the commands themselves).
func TestFmtAndLintThePolicies(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	if code, out, errOut := precheck(t, "", "fmt", "--check", "../../rego", "../../examples/policies"); code != exitAllowed {
		t.Errorf("fmt --check: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"lint"}, {"lint", "--policy", "../../examples/policies/regulated-bank"}} {
		if code, out, errOut := precheck(t, "", args...); code != exitAllowed {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ugly.rego"), []byte("package ugly\nx:=1\n"), 0o644)
	if code, out, _ := precheck(t, "", "fmt", "--check", dir); code != exitDenied || !strings.Contains(out, "ugly.rego") {
		t.Errorf("an unformatted file: exit %d\n%s", code, out)
	}
	if code, _, _ := precheck(t, "", "fmt", "-w", dir); code != exitAllowed {
		t.Error("fmt -w did not format")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "ugly.rego")); string(data) != "package ugly\n\nx := 1\n" {
		t.Errorf("formatted to %q", data)
	}
}

func TestRulesWaivers(t *testing.T) {
	t.Parallel()
	code, out, errOut := precheck(t, "", "rules", "--policy", "../../examples/policies/regulated-bank", "--waivers", "--at", "2027-01-20T00:00:00Z")
	if code != exitAllowed || !strings.Contains(out, "[0] stale    PRECHECK-VER-002 for cluster_id=97cbaab3-939e-4dbc-9187-0fe240f2b9fd, until 2027-02-01") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	for at, want := range map[string]string{"2026-12-01T00:00:00Z": "active", "2027-02-01T00:00:00Z": "expired"} {
		_, out, _ := precheck(t, "", "rules", "--policy", "../../examples/policies/regulated-bank", "--waivers", "--at", at, "--format", "json")
		if !strings.Contains(out, `"status": "`+want+`"`) {
			t.Errorf("at %s: %s", at, out)
		}
	}
	if _, out, _ := precheck(t, "", "rules", "--waivers"); !strings.Contains(out, "no waivers") {
		t.Errorf("default policy: %s", out)
	}
}
