package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/policy/policytest"
)

// TestMain lets the test binary be the precheck command, for the tests that need a real process (the
// shell completion script calls precheck back).
// withoutRace are the tests that compile or decide many policies, one command at a time: under the race
// detector (OPA's compiler and evaluator some ten times slower) they took most of the package's time, so
// they run in a binary built without it. The tests of what runs concurrently (fleet --from-api, serve,
// the shared engines) stay here.
var withoutRace = policytest.WithoutRace{
	"TestCapabilitiesOPACheck", "TestBuildIsReproducible", "TestBuildSignedBundle", "TestBuildVerb", "TestBuildFileModes",
	"TestFleetGolden", "TestFleetCompare", "TestFleetCompareGolden", "TestTestVerb", "TestTestOverride",
	"TestPositionalPolicy", "TestFmtAndLintThePolicies", "TestCompletion", "TestWasmCache", "TestCheckExamples",
	"TestExitCodes", "TestFleetFromAPIAtScale",
}

func TestWithoutRace(t *testing.T) { withoutRace.Run(t) }

func TestMain(m *testing.M) {
	if os.Getenv("PRECHECK_TEST_AS_MAIN") == "1" {
		main()
	}
	// The wasm engine's compile cache defaults to the user's cache directory: keep the tests out of it.
	// The go command's build cache is there too, and WithoutRace's go test needs the warm one: pinned first.
	if out, err := policytest.GoCommand("env", "GOCACHE").Output(); err == nil && os.Getenv("GOCACHE") == "" {
		os.Setenv("GOCACHE", strings.TrimSpace(string(out)))
	}
	dir, err := os.MkdirTemp("", "precheck-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	policytest.Exit(code)
}

// precheckEnv runs the command in-process with an environment and a terminal of its own.
func precheckEnv(t *testing.T, environ map[string]string, terminal bool, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, terminal: terminal,
		getenv: func(k string) string { return environ[k] }}
	code = run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

const (
	allowedExample = "../../examples/inputs/allowed-api-example.json"
	deniedExample  = "../../examples/inputs/denied-guest-agent-too-old.json"
	bankPolicy     = "../../examples/policies/regulated-bank"
)

// TestExitCodes holds every exit code the README documents, for every verb that can give it.
func TestExitCodes(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	os.Mkdir(broken, 0o755)
	os.WriteFile(filepath.Join(broken, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	failing := filepath.Join(dir, "failing")
	os.Mkdir(failing, 0o755)
	os.WriteFile(filepath.Join(failing, "fail_test.rego"), []byte("package fail_test\n\ntest_fails if {\n\tfalse\n}\n"), 0o644)
	ugly := filepath.Join(dir, "ugly.rego")
	os.WriteFile(ugly, []byte("package ugly\nx:=1\n"), 0o644)
	unlinted := filepath.Join(dir, "unlinted")
	os.Mkdir(unlinted, 0o755)
	os.WriteFile(filepath.Join(unlinted, "unused.rego"), []byte("package precheck.rules.unused\n\nimport data.nothing\n"), 0o644)
	// A policy that does not parse fails every verb that loads it; one that parses but does not compile
	// fails those that prepare it.
	unparsable := filepath.Join(dir, "unparsable")
	os.Mkdir(unparsable, 0o755)
	os.WriteFile(filepath.Join(unparsable, "broken.rego"), []byte("package precheck.rules.broken\n\nx := [\n"), 0o644)
	// A test file that does not parse fails the verbs that read the tests; check never parses them.
	brokenTest := filepath.Join(dir, "brokentest")
	os.Mkdir(brokenTest, 0o755)
	os.WriteFile(filepath.Join(brokenTest, "broken_test.rego"), []byte("package broken_test\n\ntest_x if {\n"), 0o644)
	notRego := filepath.Join(dir, "not.rego")
	os.WriteFile(notRego, []byte("package x\n\nx := [\n"), 0o644)
	fleetInv := fleetInventory
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"check allowed", []string{"check", "--input", allowedExample}, exitAllowed},
		{"check denied", []string{"check", "--input", deniedExample}, exitDenied},
		{"check bad usage", []string{"check", "--input", allowedExample, "--format", "xml"}, exitUsage},
		{"check unreadable input", []string{"check", "--input", filepath.Join(dir, "nope.json")}, exitUsage},
		{"check missing policy", []string{"check", "--input", allowedExample, "--policy", "nosuchdir"}, exitUsage},
		{"check broken policy", []string{"check", "--input", allowedExample, "--policy", broken}, exitPolicy},
		{"check broken test file", []string{"check", "--input", allowedExample, "--policy", brokenTest}, exitAllowed},
		{"test passes", []string{"test", "--run", "test_builtins"}, exitAllowed},
		{"test broken test file", []string{"test", brokenTest}, exitPolicy},
		{"test fails", []string{"test", failing}, exitDenied},
		{"test bad regex", []string{"test", "--run", "("}, exitUsage},
		{"test missing policy", []string{"test", "--policy", "nosuchdir"}, exitUsage},
		{"test broken policy", []string{"test", unparsable}, exitPolicy},
		{"rules", []string{"rules"}, exitAllowed},
		{"rules expired waiver", []string{"rules", bankPolicy, "--waivers", "--at", "2027-02-01"}, exitDenied},
		{"rules bad usage", []string{"rules", "--stale-within", "soon"}, exitUsage},
		{"rules broken policy", []string{"rules", unparsable}, exitPolicy},
		{"fmt formatted", []string{"fmt", "--check", "../../rego"}, exitAllowed},
		{"fmt --check unformatted", []string{"fmt", "--check", ugly}, exitDenied},
		{"fmt bad usage", []string{"fmt", "--check", "-w", ugly}, exitUsage},
		{"fmt unreadable", []string{"fmt", filepath.Join(dir, "nope")}, exitUsage},
		{"fmt not Rego", []string{"fmt", notRego}, exitPolicy},
		{"lint clean", []string{"lint"}, exitAllowed},
		{"lint problems", []string{"lint", unlinted}, exitDenied},
		{"lint bad usage", []string{"lint", "a", "b"}, exitUsage},
		{"lint broken policy", []string{"lint", unparsable}, exitPolicy},
		{"lint broken test file", []string{"lint", brokenTest}, exitPolicy},
		{"build written", []string{"build", "-o", filepath.Join(dir, "ok.wasm")}, exitAllowed},
		{"build unwritable", []string{"build", "-o", "/nonexistent/x.wasm"}, exitUsage},
		{"build broken policy", []string{"build", broken, "-o", filepath.Join(dir, "b.wasm")}, exitPolicy},
		{"capabilities", []string{"capabilities"}, exitAllowed},
		{"capabilities bad usage", []string{"capabilities", "extra"}, exitUsage},
		{"fleet reported", slices.Concat([]string{"fleet", "--inventory", fleetInv}, fleetArgs), exitAllowed},
		{"fleet blocked", slices.Concat([]string{"fleet", "--inventory", fleetInv, "--fail-on-blocked"}, fleetArgs), exitDenied},
		{"fleet bad inventory", []string{"fleet", "--inventory", filepath.Join(dir, "nope.json")}, exitUsage},
		{"fleet broken policy", slices.Concat([]string{"fleet", "--inventory", fleetInv, "--policy", broken}, fleetArgs), exitPolicy},
		{"check --from-api bad usage", []string{"check", "--from-api", "--project-id", "89cd04f168b84af6be287f71730fdb4b", "--cluster-id", "c"}, exitUsage},
		{"fleet --from-api bad usage", []string{"fleet", "--from-api"}, exitUsage},
		{"fleet --compare-policy bad usage", []string{"fleet", "--inventory", fleetInv, "--compare-policy", filepath.Join(dir, "nope")}, exitUsage},
		{"serve bad usage", []string{"serve", "--facts-from-api"}, exitUsage},
		{"serve broken policy", []string{"serve", "--policy", broken, "--addr", "127.0.0.1:0"}, exitPolicy},
		{"version", []string{"version"}, exitAllowed},
		{"version bad usage", []string{"version", "--format", "xml"}, exitUsage},
		{"help", []string{"help", "check"}, exitAllowed},
		{"-h", []string{"check", "-h"}, exitAllowed},
		{"--help", []string{"fleet", "--help"}, exitAllowed},
		{"unknown verb", []string{"chek"}, exitUsage},
		{"completion", []string{"completion", "bash"}, exitAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := precheck(t, "", tt.args...)
			if code != tt.want {
				t.Errorf("precheck %s: exit %d, want %d\n%s%s", strings.Join(tt.args, " "), code, tt.want, out, errOut)
			}
			// An error is one line; a mistake in the command line names where the verb's help is (an
			// unreadable file is not one: the help would not tell what is wrong with it).
			if code == exitUsage && strings.Count(errOut, "\n") != 1 {
				t.Errorf("error not on one line: %q", errOut)
			}
			if code == exitUsage && !strings.Contains(tt.name, "unreadable") && !strings.Contains(errOut, "--help'") {
				t.Errorf("usage error without a hint: %q", errOut)
			}
		})
	}
}

// TestBuildErrorNamesNoTempFile: an output that cannot be written is named, never the temporary file.
func TestBuildErrorNamesNoTempFile(t *testing.T) {
	t.Parallel()
	code, _, errOut := precheck(t, "", "build", "-o", "/nonexistent/x.wasm")
	if code != exitUsage || errOut != "precheck: cannot write /nonexistent/x.wasm: no such file or directory; see 'precheck build --help'\n" {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

// TestHelpGolden compares every verb's --help with a golden file (go test -run HelpGolden -update).
func TestHelpGolden(t *testing.T) {
	t.Parallel()
	root := newRootCmd(&env{})
	// cobra adds completion and help when it runs; the verbs are precheck's.
	names := []string{"", "completion", "help"}
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	for _, name := range names {
		t.Run("verb="+name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--help"}
			if name != "" {
				args = []string{name, "--help"}
			}
			code, out, errOut := precheck(t, "", args...)
			if code != exitAllowed || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			file := "precheck.txt"
			if name != "" {
				file = name + ".txt"
			}
			golden(t, filepath.Join("help", file), out)
			// -h is --help, and help VERB too.
			if _, short, _ := precheck(t, "", slices.Concat(args[:len(args)-1], []string{"-h"})...); short != out {
				t.Errorf("-h differs from --help")
			}
			if name != "" && name != "help" {
				if _, viaHelp, _ := precheck(t, "", "help", name); viaHelp != out {
					t.Errorf("help %s differs from %s --help", name, name)
				}
			}
		})
	}
}

// TestCompletion: the bash script loads, and, calling the command back as bash does, completes the verbs
// and --format's values.
func TestCompletion(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if code, out, _ := precheck(t, "", "completion", shell); code != exitAllowed || !strings.Contains(out, "precheck") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}
	_, script, _ := precheck(t, "", "completion", "bash")
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	path := filepath.Join(t.TempDir(), "precheck.bash")
	os.WriteFile(path, []byte(script), 0o644)
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	// The script asks `precheck __complete ...`: this test binary is precheck when told so (TestMain).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "precheck")); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		// The script uses the bash-completion package's helpers when it is installed; a stand-in otherwise.
		prog := "if [ -r /usr/share/bash-completion/bash_completion ]; then . /usr/share/bash-completion/bash_completion; " +
			"else _get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; " +
			"words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD; }; fi\n" +
			"source " + path + "\n" +
			"COMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
			"COMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n" +
			"COMP_LINE='" + line + "'\nCOMP_POINT=${#COMP_LINE}\n" +
			"__start_precheck precheck\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		cmd := exec.Command(bash, "-c", prog)
		cmd.Env = append(os.Environ(), "PRECHECK_TEST_AS_MAIN=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		// stderr has bash's complaint that compopt runs outside a completion, which it does here.
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("precheck "); !slices.Contains(got, "check") || !slices.Contains(got, "fleet") || !slices.Contains(got, "version") {
		t.Errorf("verbs: %q", got)
	}
	if got := complete("precheck fleet --format "); !slices.Equal(got, []string{"json", "junit", "markdown", "sarif", "text"}) {
		t.Errorf("fleet --format: %q", got)
	}
	if got := complete("precheck check --engine "); !slices.Equal(got, []string{"rego", "wasm"}) {
		t.Errorf("check --engine: %q", got)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := precheck(t, "", "version", "--format", "JSON")
	var v versions
	if code != exitAllowed || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("exit %d\n%s", code, out)
	}
	p, _ := defaultPolicy()
	if v.Precheck == "" || v.Policy != p.Revision() || !strings.HasPrefix(v.OPA, "v1.") || !strings.HasPrefix(v.Wazero, "v1.") || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("%+v", v)
	}
	_, text, _ := precheck(t, "", "version")
	for _, want := range []string{"precheck " + v.Precheck, "policy   " + v.Policy, "opa      " + v.OPA, "wazero   " + v.Wazero, "go       " + v.Go} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// TestTimesDurationsFormats: --at takes a date, durations days, format names any case.
func TestTimesDurationsFormats(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"2027-01-20", "2027-01-20T00:00:00Z"} {
		code, out, errOut := precheck(t, "", "rules", bankPolicy, "--waivers", "--at", at, "--stale-within", "14d")
		if code != exitAllowed || !strings.Contains(out, "stale") {
			t.Errorf("--at %s: exit %d\n%s%s", at, code, out, errOut)
		}
	}
	// 2027-01-01 is 31 days before the waiver's expiry: stale within 32d, active within 30d.
	if _, out, _ := precheck(t, "", "rules", bankPolicy, "--waivers", "--at", "2027-01-01", "--stale-within", "32d"); !strings.Contains(out, "stale") {
		t.Errorf("32d: %s", out)
	}
	if _, out, _ := precheck(t, "", "rules", bankPolicy, "--waivers", "--at", "2027-01-01", "--stale-within", "720h"); !strings.Contains(out, "active") {
		t.Errorf("720h: %s", out)
	}
	if _, help, _ := precheck(t, "", "rules", "--help"); !strings.Contains(help, "(default 14d)") {
		t.Errorf("the default is not shown in days:\n%s", help)
	}
	code, _, _ := precheck(t, "", "check", "--input", allowedExample, "--at", "2030-01-01", "--format", "JSON", "--engine", "WASM")
	if code != exitAllowed {
		t.Errorf("a date, JSON and WASM: exit %d", code)
	}
}

func TestColour(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		environ  map[string]string
		terminal bool
		args     []string
		colour   bool
	}{
		{"terminal", nil, true, nil, true},
		{"pipe", nil, false, nil, false},
		{"NO_COLOR", map[string]string{"NO_COLOR": "1"}, true, nil, false},
		{"NO_COLOR empty", map[string]string{"NO_COLOR": ""}, true, nil, true},
		{"--no-color", nil, true, []string{"--no-color"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := slices.Concat([]string{"check", "--input", deniedExample}, tt.args)
			_, out, _ := precheckEnv(t, tt.environ, tt.terminal, "", args...)
			if got := strings.Contains(out, "\x1b["); got != tt.colour {
				t.Errorf("colour %v, want %v:\n%q", got, tt.colour, out)
			}
		})
	}
}

// TestYAMLInput: a YAML document decides as its JSON does; YAML's mistakes (a key twice, an unknown
// member) are refused with the YAML's line.
func TestYAMLInput(t *testing.T) {
	t.Parallel()
	doc := `# the API page's example
request:
  project_id: 89cd04f168b84af6be287f71730fdb4b
  cluster_id: 97cbaab3-939e-4dbc-9187-0fe240f2b9fd
  body:
    encrypt: {crypt_algorithm: generalCipher, master_key_id: 0f3196c8-5c23-469f-84da-92ecd2499dce, master_key_name: KMS-1abd-1016}
cluster:
  version: "8.1.3.310"
  guest_agent_version: "8.3.0.200"
  status: AVAILABLE
  sub_status: NORMAL
  task_status: ""
  action_progress: {}
  encrypted: false
  dr_relationship: false
  enterprise_project_id: "0"
  tags: [{key: env, value: prod}]
key: {key_id: 0f3196c8-5c23-469f-84da-92ecd2499dce, key_state: "2", key_spec: AES_256}
tenant: {class: default}
`
	_, want, _ := precheck(t, "", "check", "--input", allowedExample, "--format", "json")
	dir := t.TempDir()
	file := filepath.Join(dir, "doc.yaml")
	os.WriteFile(file, []byte(doc), 0o644)
	for _, args := range [][]string{{"--input", file}, {"--input", "-"}} {
		code, out, errOut := precheck(t, doc, slices.Concat([]string{"check", "--format", "json"}, args)...)
		if code != exitAllowed || out != want {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"a key twice", strings.Replace(doc, "  status: AVAILABLE\n", "  status: AVAILABLE\n  status: CREATING\n", 1), `line 11: key "status" already set`},
		{"an unknown member", strings.Replace(doc, "tenant: {class: default}", "tenant: {class: default}\nkeyy: {}", 1), `line 20, column 1: keyy:`},
		{"a case variant", strings.Replace(doc, "  status: AVAILABLE\n", "  status: AVAILABLE\n  Status: CREATING\n", 1), "line 11, column 3: cluster.Status"},
		{"malformed", "request: [\n", "stdin: line 1: did not find expected node content"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := precheck(t, tt.doc, "check", "--input", "-")
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want it to say %q", code, errOut, tt.want)
			}
		})
	}
}

// TestCheckFromFlagsAlone: flags alone express the allowed API example, key facts included, with the
// boolean facts given as separate arguments.
func TestCheckFromFlagsAlone(t *testing.T) {
	t.Parallel()
	args := []string{"check", "--project-id", "89cd04f168b84af6be287f71730fdb4b", "--cluster-id", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"--algorithm", "generalCipher", "--key-id", "0f3196c8-5c23-469f-84da-92ecd2499dce", "--key-name", "KMS-1abd-1016",
		"--cluster-version", "8.1.3.310", "--agent-version", "8.3.0.200", "--status", "AVAILABLE", "--sub-status", "NORMAL",
		"--task-status", "", "--encrypted", "false", "--dr", "FALSE", "--key-fact-id", "0f3196c8-5c23-469f-84da-92ecd2499dce",
		"--key-state", "2", "--key-spec", "AES_256", "--tenant-class", "default", "--format", "json"}
	code, out, errOut := precheck(t, "", args...)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var d policy.Decision
	json.Unmarshal([]byte(out), &d)
	if len(d.Warnings) != 1 || d.Warnings[0].Code != "PRECHECK-OPS-001" {
		t.Errorf("warnings %+v: the key facts should leave only the restart warning", d.Warnings)
	}
	// --encrypted true as a separate argument denies, and so does the bare flag.
	for _, enc := range [][]string{{"--encrypted", "true"}, {"--encrypted"}, {"--encrypted=true"}} {
		code, out, _ := precheck(t, "", slices.Concat(args, enc)...)
		if code != exitDenied || !strings.Contains(out, "PRECHECK-CLU-003") {
			t.Errorf("%v: exit %d", enc, code)
		}
	}
}

func TestServeFactsFromAPINeedsUpstream(t *testing.T) {
	t.Parallel()
	code, _, errOut := precheck(t, "", "serve", "--facts-from-api")
	if code != exitUsage || !strings.Contains(errOut, "--facts-from-api") || !strings.Contains(errOut, "--upstream") {
		t.Errorf("exit %d, %s", code, errOut)
	}
}

// TestRulesWaiversExpired: an expired waiver fails `rules --waivers`, so that a CI job notices it.
func TestRulesWaiversExpired(t *testing.T) {
	t.Parallel()
	code, out, errOut := precheck(t, "", "rules", bankPolicy, "--waivers", "--at", "2027-02-02")
	if code != exitDenied || !strings.Contains(out, "expired") || !strings.Contains(errOut, "1 waiver expired") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// TestRulesEffectiveLevels: the catalog gives the level the policy's data sets, globally and per class.
func TestRulesEffectiveLevels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"precheck": {"levels": {"global": {"PRECHECK-CLU-005": "deny"},
		"tenant_classes": {"default": {"PRECHECK-KEY-001": "off"}, "regulated": {"PRECHECK-CLU-005": "deny", "PRECHECK-KEY-001": "deny"}}}}}`), 0o644)
	_, out, _ := precheck(t, "", "rules", dir, "--format", "json")
	var c struct{ Rules []levelledRule }
	json.Unmarshal([]byte(out), &c)
	got := map[string]levelledRule{}
	for _, r := range c.Rules {
		got[r.Code] = r
	}
	if r := got["PRECHECK-CLU-005"]; r.Severity != "warn" || r.Level != "deny" || len(r.ClassLevels) != 0 {
		t.Errorf("CLU-005: %+v", r)
	}
	if r := got["PRECHECK-KEY-001"]; r.Level != "warn" || r.ClassLevels["default"] != "off" || r.ClassLevels["regulated"] != "deny" {
		t.Errorf("KEY-001: %+v", r)
	}
	_, text, _ := precheck(t, "", "rules", "--policy", dir)
	if !strings.Contains(text, "PRECHECK-KEY-001   warn  400  key facts not given  [default: off, regulated: deny]") ||
		!strings.Contains(text, "PRECHECK-CLU-005   deny  409") {
		t.Errorf("text:\n%s", text)
	}
	_, md, _ := precheck(t, "", "rules", bankPolicy, "--format", "markdown")
	if !strings.Contains(md, "| `PRECHECK-KEY-001` | deny |") {
		t.Errorf("the bank's KEY-001 is not deny:\n%s", md)
	}
}

// TestPositionalPolicy: a policy given as the argument is the policy used, as --policy is.
func TestPositionalPolicy(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.rego"), []byte(`# METADATA
# title: X
package precheck.rules.x

# METADATA
# title: x rule
# description: never fires
# custom:
#   code: X-ONE-001
#   severity: warn
#   status: 400
#   remediation: nothing
findings contains {"rule": rego.metadata.rule().custom} if {
	false
}
`), 0o644)
	for _, verb := range []string{"rules", "lint"} {
		_, out, _ := precheck(t, "", verb, dir)
		if !strings.Contains(out, "X-ONE-001") && !strings.Contains(out, "embedded default + "+dir) {
			t.Errorf("%s DIR ignored the policy:\n%s", verb, out)
		}
	}
	_, out, _ := precheck(t, "", "build", dir, "-o", filepath.Join(t.TempDir(), "x.wasm"))
	p, _ := policy.LoadWithOverrides(dir)
	if !strings.Contains(out, "revision "+p.Revision()) {
		t.Errorf("build DIR: %s (want revision %s)", out, p.Revision())
	}
	code, _, errOut := precheck(t, "", "rules", dir, "--policy", dir)
	if code != exitUsage || !strings.Contains(errOut, "given twice") {
		t.Errorf("both: exit %d %s", code, errOut)
	}
	code, out, errOut = precheck(t, "", "test", "../../rego", "--run", "test_builtins")
	if code != exitAllowed || !strings.Contains(out, "PASS") {
		t.Errorf("test rego/: exit %d\n%s%s", code, out, errOut)
	}
}

// TestTestOverride: a data-only override passes with a note; coverage under an override counts its files.
func TestTestOverride(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dataOnly := t.TempDir()
	os.WriteFile(filepath.Join(dataOnly, "data.json"), []byte(`{"precheck": {"config": {"min_cluster_version": "8.1.0"}}}`), 0o644)
	code, _, errOut := precheck(t, "", "test", "--policy", dataOnly, "--coverage", "--threshold", "90")
	if code != exitAllowed || !strings.Contains(errOut, "no Rego tests of its own") {
		t.Errorf("data-only: exit %d, %s", code, errOut)
	}
	code, out, errOut := precheck(t, "", "test", "--policy", bankPolicy, "--coverage", "--format", "json")
	var report struct {
		Coverage struct {
			Files map[string]any `json:"files"`
		} `json:"coverage"`
	}
	if code != exitAllowed || json.Unmarshal([]byte(out), &report) != nil {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	files := slices.Sorted(func(yield func(string) bool) {
		for f := range report.Coverage.Files {
			if !yield(f) {
				return
			}
		}
	})
	if !slices.Equal(files, []string{"bank.rego"}) {
		t.Errorf("coverage of %q, want the override's own bank.rego alone", files)
	}
}

// TestFmtLikeOPA: print by default, -l, -d, -w, stdin.
func TestFmtLikeOPA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ugly := filepath.Join(dir, "ugly.rego")
	const src, want = "package ugly\nx:=1\n", "package ugly\n\nx := 1\n"
	os.WriteFile(ugly, []byte(src), 0o644)
	if code, out, _ := precheck(t, "", "fmt", ugly); code != exitAllowed || out != want {
		t.Errorf("print: exit %d %q", code, out)
	}
	if code, out, _ := precheck(t, "", "fmt", "-l", dir); code != exitAllowed || out != ugly+"\n" {
		t.Errorf("-l: exit %d %q", code, out)
	}
	wantDiff := "--- " + ugly + "\n+++ " + ugly + " (formatted)\n@@ -1,2 +1,3 @@\n package ugly\n-x:=1\n+\n+x := 1\n"
	if code, out, _ := precheck(t, "", "fmt", "-d", ugly); code != exitAllowed || out != wantDiff {
		t.Errorf("-d: exit %d\n%s\nwant\n%s", code, out, wantDiff)
	}
	for _, args := range [][]string{{"fmt"}, {"fmt", "-"}} {
		if code, out, _ := precheck(t, src, args...); code != exitAllowed || out != want {
			t.Errorf("%v on stdin: exit %d %q", args, code, out)
		}
	}
	if code, _, _ := precheck(t, src, "fmt", "--check", "-"); code != exitDenied {
		t.Errorf("--check on stdin: exit %d", code)
	}
	if data, _ := os.ReadFile(ugly); string(data) != src {
		t.Error("fmt without -w changed the file")
	}
	if code, _, _ := precheck(t, "", "fmt", "-w", ugly); code != exitAllowed {
		t.Errorf("-w: exit %d", code)
	}
	if data, _ := os.ReadFile(ugly); string(data) != want {
		t.Errorf("-w wrote %q", data)
	}
}

// TestFleetInventories: YAML, stdin, CSV by content, --inventory-format; each gives the JSON inventory's
// report.
func TestFleetInventories(t *testing.T) {
	t.Parallel()
	_, want := fleetJSONReport(t, "--inventory", fleetInventory)
	jsonText, _ := os.ReadFile(fleetInventory)
	csvText, _ := os.ReadFile("testdata/fleet/inventory.csv")
	yamlText, _ := os.ReadFile("testdata/fleet/inventory.yaml")
	dir := t.TempDir()
	noExt := filepath.Join(dir, "inventory")
	os.WriteFile(noExt, csvText, 0o644)
	for _, tt := range []struct {
		name, stdin string
		args        []string
	}{
		{"yaml file", "", []string{"--inventory", "testdata/fleet/inventory.yaml"}},
		{"yaml on stdin", string(yamlText), []string{"--inventory", "-"}},
		{"json on stdin", string(jsonText), []string{"--inventory", "-"}},
		{"csv on stdin", string(csvText), []string{"--inventory", "-", "--inventory-format", "CSV"}},
		{"csv by content", "", []string{"--inventory", noExt}},
		{"csv sniffed on stdin", string(csvText), []string{"--inventory", "-"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := precheck(t, tt.stdin, slices.Concat([]string{"fleet"}, fleetArgs, tt.args, []string{"--format", "json"})...)
			if code != exitAllowed || out != want {
				t.Errorf("exit %d\n%s", code, errOut)
			}
		})
	}
	bad := "- cluster_id: a\n- cluster_id: b\n  clutser: {}\n"
	code, _, errOut := precheck(t, bad, "fleet", "--inventory", "-")
	if code != exitUsage || !strings.Contains(errOut, `inventory stdin: line 2: entry 2: json: unknown field "clutser"`) {
		t.Errorf("a YAML entry's mistake: exit %d %s", code, errOut)
	}
	code, _, errOut = precheck(t, "- cluster_id: a\n  cluster_id: b\n", "fleet", "--inventory", "-")
	if code != exitUsage || !strings.Contains(errOut, "already") {
		t.Errorf("a YAML key twice: exit %d %s", code, errOut)
	}
}

// TestFleetSARIFSchema validates the SARIF report against the SARIF 2.1.0 schema (OASIS, errata 01) and
// checks that every result is placed at its entry in the inventory.
func TestFleetSARIFSchema(t *testing.T) {
	t.Parallel()
	compiler := jsonschema.NewCompiler()
	schema, err := compiler.Compile("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range []string{fleetInventory, "testdata/fleet/inventory.csv", "testdata/fleet/inventory.yaml"} {
		t.Run(filepath.Base(inv), func(t *testing.T) {
			t.Parallel()
			code, out, _ := fleet(t, "--inventory", inv, "--format", "sarif")
			if code != exitAllowed {
				t.Fatalf("exit %d", code)
			}
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc); err != nil {
				t.Fatalf("not SARIF 2.1.0: %v", err)
			}
			var log struct {
				Runs []struct {
					Results []struct {
						Properties struct{ ClusterID string } `json:"properties"`
						Locations  []struct {
							PhysicalLocation struct {
								ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
								Region           struct{ StartLine int } `json:"region"`
							} `json:"physicalLocation"`
						} `json:"locations"`
					} `json:"results"`
				} `json:"runs"`
			}
			json.Unmarshal([]byte(out), &log)
			lines := strings.Split(string(must(os.ReadFile(inv))), "\n")
			for _, res := range log.Runs[0].Results {
				loc := res.Locations[0].PhysicalLocation
				if loc.ArtifactLocation.URI != inv || loc.Region.StartLine < 1 || loc.Region.StartLine > len(lines) {
					t.Fatalf("location %+v", loc)
				}
				// The entry starts on its line; its cluster ID is on it or within the entry's next lines.
				entry := strings.Join(lines[loc.Region.StartLine-1:min(len(lines), loc.Region.StartLine+3)], "\n")
				if !strings.Contains(entry, res.Properties.ClusterID) {
					t.Errorf("line %d does not start the entry of %s:\n%s", loc.Region.StartLine, res.Properties.ClusterID, entry)
				}
			}
		})
	}
	// From stdin there is no file: the results keep their logical location only, and are still SARIF.
	data, _ := os.ReadFile(fleetInventory)
	_, out, _ := precheck(t, string(data), slices.Concat([]string{"fleet", "--inventory", "-", "--format", "sarif"}, fleetArgs)...)
	doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err := schema.Validate(doc); err != nil || strings.Contains(out, "physicalLocation") {
		t.Errorf("from stdin: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
