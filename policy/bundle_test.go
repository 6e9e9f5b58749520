package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/precheck/precheck/policy"
)

// writeFiles writes name -> content under a new temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const bankRule = `# METADATA
# title: Bank
# description: A compliance team's own rule.
package precheck.rules.bank

# METADATA
# title: no general cipher at the bank
# description: The bank forbids the international algorithms everywhere.
# custom:
#   code: BANK-ALG-001
#   severity: deny
#   status: 403
#   remediation: use SMcompatible
findings contains {"rule": rego.metadata.rule().custom, "field": "request.body.encrypt.crypt_algorithm", "message": "the bank forbids generalCipher", "expected": "SMcompatible", "actual": "generalCipher"} if {
	input.request.body.encrypt.crypt_algorithm == "generalCipher"
}
`

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"parse error", map[string]string{"bad.rego": "package precheck.rules.bad\n\nfindings contains x if {\n\tx := [1,\n}\n"},
			[]string{"bad.rego:5:1", "rego_parse_error"}},
		{"no metadata", map[string]string{"x.rego": "package precheck.rules.x\n\nfindings contains {} if true\n"},
			[]string{"x.rego:3:1", "findings rule has no METADATA"}},
		{"bad code", map[string]string{"x.rego": strings.Replace(bankRule, "BANK-ALG-001", "DWS.0001", 1)},
			[]string{"x.rego:14:1", `custom.code "DWS.0001"`}},
		{"duplicate code", map[string]string{"x.rego": strings.Replace(bankRule, "BANK-ALG-001", "PRECHECK-VER-002", 1)},
			[]string{"rule code PRECHECK-VER-002 is already used"}},
		{"bad severity", map[string]string{"x.rego": strings.Replace(bankRule, "severity: deny", "severity: block", 1)},
			[]string{`custom.severity "block" must be deny or warn`}},
		{"bad status", map[string]string{"x.rego": strings.Replace(bankRule, "status: 403", "status: 200", 1)},
			[]string{"custom.status 200 must be an HTTP 4xx status"}},
		{"no status", map[string]string{"x.rego": strings.Replace(bankRule, "#   status: 403\n", "", 1)},
			[]string{"METADATA has no custom.status"}},
		{"bad level", map[string]string{"data.json": `{"precheck": {"levels": {"global": {"PRECHECK-VER-002": "block"}}}}`},
			[]string{"data.precheck.levels.global.PRECHECK-VER-002: level block must be deny, warn or off"}},
		{"level of unknown rule", map[string]string{"data.json": `{"precheck": {"levels": {"tenant_classes": {"regulated": {"NO-SUCH-1": "off"}}}}}`},
			[]string{"data.precheck.levels.tenant_classes.regulated: NO-SUCH-1 is not a rule code"}},
		{"bad minimum version", map[string]string{"data.json": `{"precheck": {"config": {"min_guest_agent_version": "8.3.x"}}}`},
			[]string{"data.precheck.config.min_guest_agent_version: 8.3.x is not a version"}},
		{"misspelt required fact", map[string]string{"data.json": `{"precheck": {"config": {"required_facts": [{"member": "clustr", "name": "version", "type": "string", "source": "x"}]}}}`},
			[]string{"data.precheck.config.required_facts[0]: member clustr must be cluster or key"}},
		{"malformed data", map[string]string{"data.json": `{"precheck": `},
			[]string{"data.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			p, err := policy.LoadWithOverrides(dir)
			var perr *policy.PolicyError
			if !errors.As(err, &perr) {
				t.Fatalf("loaded %v, err %v; want a PolicyError", p != nil, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCompileErrorNamesFileLineColumn(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"oops.rego": "package precheck.rules.oops\n\nx := y\n"})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err) // it parses; it does not compile
	}
	_, err = policy.New(context.Background(), p)
	// The file is named relative to the policy root, and the error says which root.
	want := dir + ": oops.rego:3:6: rego_unsafe_var_error"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"bank.rego": bankRule,
		"data.json": `{"precheck": {"config": {"min_guest_agent_version": "8.3.1"}, "levels": {"global": {"PRECHECK-OPS-001": "off"}}}}`,
	})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Catalog().Lookup("BANK-ALG-001"); !ok {
		t.Error("the override's rule is not in the catalog")
	}
	if _, ok := p.Catalog().Lookup("PRECHECK-VER-002"); !ok {
		t.Error("the default's rules are gone from the catalog")
	}
	e, err := policy.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	d, err := e.CheckJSON(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	got := outline(d.Violations)
	want := []string{"BANK-ALG-001 request.body.encrypt.crypt_algorithm", "PRECHECK-VER-002 cluster.guest_agent_version"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("violations %q, want %q", got, want)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("PRECHECK-OPS-001 is off, yet warnings are %q", outline(d.Warnings))
	}
	// Data merges member by member: the other thresholds and the tenant classes are still the default's.
	cfg := p.Data()["precheck"].(map[string]any)["config"].(map[string]any)
	if cfg["min_cluster_version"] != "8.0.0" || cfg["min_guest_agent_version"] != "8.3.1" {
		t.Errorf("merged config = %v", cfg)
	}
}

func TestOverlayReplacesFileAtSamePath(t *testing.T) {
	t.Parallel()
	// A file at the same path as a default one replaces it: here the restart warning goes away.
	dir := writeFiles(t, map[string]string{"restart.rego": "package precheck.rules.restart\n"})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Catalog().Lookup("PRECHECK-OPS-001"); ok {
		t.Error("the replaced file's rule is still in the catalog")
	}
}

func TestLoadBundleFile(t *testing.T) {
	t.Parallel()
	def, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	b := def.Bundle()
	b.Manifest.Revision = "2026-11-27.1"
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision() != "2026-11-27.1" {
		t.Errorf("revision %q, want the manifest's", p.Revision())
	}
	if len(p.Catalog().Rules) != len(def.Catalog().Rules) {
		t.Errorf("bundle has %d rules, the default %d", len(p.Catalog().Rules), len(def.Catalog().Rules))
	}
	if _, err := policy.New(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissingPath(t *testing.T) {
	t.Parallel()
	_, err := policy.Load(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

// A check never runs the tests, so reading a policy does not parse them: a test file that does not parse
// fails what runs or reads the tests (Tests, Test, Lint), naming its line, and nothing else. It still
// counts in the revision.
func TestTestsAreParsedWhenNeeded(t *testing.T) {
	t.Parallel()
	broken := "package broken_test\n\ntest_x if {\n\tx := [1,\n}\n"
	for _, load := range []struct {
		name string
		load func(string) (*policy.Policy, error)
	}{{"Load", policy.Load}, {"LoadWithOverrides", policy.LoadWithOverrides}} {
		t.Run(load.name, func(t *testing.T) {
			t.Parallel()
			// Load reads a whole policy: a copy of the default's directory, with the broken test beside it.
			policyDir := func(test string) string {
				dir := writeFiles(t, map[string]string{"sub/broken_test.rego": test})
				if load.name == "Load" {
					if err := os.CopyFS(dir, os.DirFS("../rego")); err != nil {
						t.Fatal(err)
					}
				}
				return dir
			}
			p, err := load.load(policyDir(broken))
			if err != nil {
				t.Fatalf("a test file that does not parse fails the load: %v", err)
			}
			e, err := policy.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := os.ReadFile("../examples/inputs/allowed-api-example.json")
			if err != nil {
				t.Fatal(err)
			}
			if d, err := e.CheckJSON(context.Background(), doc); err != nil || !d.Allowed {
				t.Errorf("decision %+v, %v; want the allowed decision", d, err)
			}
			const where = "sub/broken_test.rego:5:1"
			var perr *policy.PolicyError
			if _, err := p.Tests(); !errors.As(err, &perr) || !strings.Contains(err.Error(), where) {
				t.Errorf("Tests: %v; want a PolicyError naming %s", err, where)
			}
			if _, err := p.Test(context.Background(), policy.TestOptions{}); !errors.As(err, &perr) || !strings.Contains(err.Error(), where) {
				t.Errorf("Test: %v; want a PolicyError naming %s", err, where)
			}
			if problems := strings.Join(p.Lint(), "\n"); !strings.Contains(problems, where) {
				t.Errorf("Lint does not name %s:\n%s", where, problems)
			}
			other, err := load.load(policyDir(broken + "\n"))
			if err != nil || other.Revision() == p.Revision() {
				t.Errorf("a changed test file: revision %q, %v; want another than %q", other.Revision(), err, p.Revision())
			}
		})
	}
}

func TestRevisionIsContentDigest(t *testing.T) {
	t.Parallel()
	a, _ := policy.Default()
	b, _ := policy.Default()
	if a.Revision() != b.Revision() || !strings.HasPrefix(a.Revision(), "sha256:") {
		t.Fatalf("revisions %q and %q", a.Revision(), b.Revision())
	}
	over, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"data.json": `{"precheck": {"config": {"min_cluster_version": "8.1.0"}}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if over.Revision() == a.Revision() {
		t.Error("changed data, same revision")
	}
}

func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	before := e.Policy().Revision()

	broken, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"oops.rego": "package precheck.rules.oops\n\nx := y\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(context.Background(), broken); err == nil {
		t.Fatal("reload of a policy that does not compile succeeded")
	}
	if e.Policy().Revision() != before {
		t.Error("a failed reload replaced the policy")
	}
	if d, err := e.CheckJSON(context.Background(), doc); err != nil || !d.Allowed {
		t.Fatalf("after a failed reload: %+v, %v", d, err)
	}

	stricter, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"data.json": `{"precheck": {"config": {"min_guest_agent_version": "9.0.0"}}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(context.Background(), stricter); err != nil {
		t.Fatal(err)
	}
	if d, err := e.CheckJSON(context.Background(), doc); err != nil || d.Allowed {
		t.Fatalf("after reloading a stricter policy: %+v, %v", d, err)
	}
}

// TestConcurrentCheckAndReload runs parallel checks while the policy is reloaded over and over; with -race
// it also proves the engine's sharing safe. Each decision must come whole from one policy or the other.
func TestConcurrentCheckAndReload(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	doc, _ := os.ReadFile("../examples/inputs/allowed-api-example.json")
	lenient, _ := policy.Default()
	strict, err := policy.LoadWithOverrides(writeFiles(t, map[string]string{"data.json": `{"precheck": {"config": {"min_guest_agent_version": "9.0.0"}}}`}))
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var checks atomic.Int64
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.CheckJSON(context.Background(), doc)
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed && (len(d.Violations) != 1 || d.Violations[0].Code != "PRECHECK-VER-002") {
					t.Errorf("a decision from neither policy: %+v", d)
					return
				}
				checks.Add(1)
			}
		})
	}
	for i := range 20 {
		p := lenient
		if i%2 == 0 {
			p = strict
		}
		if err := e.Reload(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	for checks.Load() < 50 { // let the checkers overlap the reloads and run a while after them
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
}

func TestLintFindsProblems(t *testing.T) {
	policy.WithoutRace.Delegate(t)
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"bank.rego": strings.Replace(bankRule, "# METADATA\n# title: Bank\n# description: A compliance team's own rule.\n", "", 1) +
			"\nunused(x) := 1 if {\n\ty := 2\n}\n",
		"bank_test.rego": "package bank_test\n\nimport data.precheck.lib\n\ntest_code if {\n\t\"NOPE-RULE-001\" != \"\"\n}\n",
	})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(p.Lint(), "\n")
	for _, want := range []string{
		"bank.rego:1:1: package data.precheck.rules.bank has no METADATA title",
		"rego_compile_error: assigned var y unused",
		"bank_test.rego:3:1: rego_compile_error: import data.precheck.lib unused",
		`bank_test.rego:6:2: code NOPE-RULE-001 is not a rule code of this policy`,
		"bank.rego:11: rule BANK-ALG-001 has no test naming it",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("lint does not report %q:\n%s", want, problems)
		}
	}
}

// TestRevisionHoweverPathIsSpelt: the same policy read through any spelling of its path (relative, with a
// trailing slash, absolute, a symlink, a copy elsewhere, a bundle file) is the same policy: same revision,
// same module names (relative to the policy root, as the embedded default's are), nothing of the path in it.
func TestRevisionHoweverPathIsSpelt(t *testing.T) {
	policy.WithoutRace.Delegate(t)
	abs, err := filepath.Abs("../rego")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "policy")
	if err := os.CopyFS(elsewhere, os.DirFS(abs)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
	def, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*def.Bundle()); err != nil {
		t.Fatal(err)
	}
	tarDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tarDir, "bundle.tar.gz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(abs))
	names := func(p *policy.Policy) []string {
		var out []string
		for name := range p.Modules() {
			out = append(out, strings.TrimPrefix(name, "/"))
		}
		tests, err := p.Tests()
		if err != nil {
			t.Fatal(err)
		}
		for name := range tests {
			out = append(out, strings.TrimPrefix(name, "/"))
		}
		slices.Sort(out)
		return out
	}
	wantNames := names(def)
	for _, load := range []struct {
		name string
		load func(string) (*policy.Policy, error)
	}{{"Load", policy.Load}, {"LoadWithOverrides", policy.LoadWithOverrides}} {
		for _, spelling := range []string{"./rego", "rego/", "rego", "./rego/../rego", abs, abs + "/", link, elsewhere} {
			t.Run(load.name+"("+spelling+")", func(t *testing.T) {
				p, err := load.load(spelling)
				if err != nil {
					t.Fatal(err)
				}
				if p.Revision() != def.Revision() {
					t.Errorf("revision %s, the embedded default's %s", p.Revision(), def.Revision())
				}
				if got := names(p); !slices.Equal(got, wantNames) {
					t.Errorf("modules %q, want %q", got, wantNames)
				}
				for _, r := range p.Catalog().Rules {
					if strings.Contains(r.File, "rego/") || filepath.IsAbs(strings.TrimPrefix(r.File, "/")) {
						t.Errorf("rule %s is at %s, not a name relative to the policy root", r.Code, r.File)
					}
				}
			})
		}
	}
	// A bundle file (the default without its tests) likewise, through any spelling of its path.
	var tarRevision string
	for _, spelling := range []string{filepath.Join(tarDir, "bundle.tar.gz"), filepath.Join(tarDir, ".", "bundle.tar.gz")} {
		p, err := policy.Load(spelling)
		if err != nil {
			t.Fatal(err)
		}
		if tarRevision == "" {
			tarRevision = p.Revision()
		} else if p.Revision() != tarRevision {
			t.Errorf("bundle %s: revision %s, another spelling gave %s", spelling, p.Revision(), tarRevision)
		}
	}
	t.Chdir(tarDir)
	if p, err := policy.Load("bundle.tar.gz"); err != nil {
		t.Error(err)
	} else if p.Revision() != tarRevision {
		t.Errorf("bundle.tar.gz: revision %s, want %s", p.Revision(), tarRevision)
	}
}

// A bundle is bounded before OPA's reader, which holds every file in memory before it checks a signature,
// sees any of it: a tar header of a few bytes that claims a terabyte would make it allocate the terabyte
// (the process dies of it), and a gzip bomb would be decompressed whole. Not parallel: it measures what
// the process allocates.
func TestBundleOverTheLimitIsRefused(t *testing.T) {
	tarball := func(sizes map[string]int64, content bool) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		for _, name := range slices.Sorted(maps.Keys(sizes)) {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: sizes[name], Typeflag: tar.TypeReg})
			if content {
				io.Copy(tw, io.LimitReader(zeros{}, sizes[name]))
			}
		}
		tw.Flush() // no Close: a header that claims more than follows ends the archive early
		zw.Close()
		return buf.Bytes()
	}
	claims := tarball(map[string]int64{"/data.json": 1 << 40}, false)
	bomb := tarball(map[string]int64{"/a/data.json": 33 << 20, "/b/data.json": 33 << 20}, true)
	t.Logf("a claim of 1 TiB in %d bytes, a bomb of 66 MiB in %d bytes", len(claims), len(bomb))
	path := filepath.Join(t.TempDir(), "bomb.tar.gz")
	if err := os.WriteFile(path, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func() error{
		"claim":     func() error { _, err := policy.ReadBundle(bytes.NewReader(claims), "claim", nil); return err },
		"bomb":      func() error { _, err := policy.ReadBundle(bytes.NewReader(bomb), "bomb", nil); return err },
		"bomb file": func() error { _, err := policy.Load(path); return err },
		"over limit": func() error {
			_, err := policy.ReadBundle(io.LimitReader(zeros{}, policy.MaxBundleBytes+1), "big", nil)
			return err
		},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := read()
		runtime.ReadMemStats(&after)
		var perr *policy.PolicyError
		if !errors.As(err, &perr) || !strings.Contains(err.Error(), "limit of 67108864 bytes") {
			t.Errorf("%s: %v, want a PolicyError naming the limit", name, err)
		}
		// The file over the limit is read up to it (64 MiB); the others must not be held in memory.
		if grew := after.TotalAlloc - before.TotalAlloc; name != "over limit" && grew > 16<<20 {
			t.Errorf("%s: %d MiB allocated while refusing it", name, grew>>20)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
