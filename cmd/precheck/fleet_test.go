package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	fleetlib "github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

// fleetArgs are the flags every fleet test gives: the clock fixed, and the intended call for the entries
// whose encrypt lacks members.
var fleetArgs = []string{"--at", "2026-06-01T00:00:00Z", "--algorithm", "generalCipher",
	"--key-id", "c5d6e7f8-9a0b-4c1d-8e2f-3a4b5c6d7e8f", "--key-name", "KMS-fleet-default"}

const fleetInventory = "testdata/fleet/inventory.json"

func fleet(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return precheck(t, "", slices.Concat([]string{"fleet"}, fleetArgs, args)...)
}

// fleetJSONReport runs fleet with --format json and reads the report back.
func fleetJSONReport(t *testing.T, args ...string) (*fleetReport, string) {
	t.Helper()
	code, out, errOut := fleet(t, append(args, "--format", "json")...)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var r fleetReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("json report: %v\n%s", err, out)
	}
	return &r, out
}

// TestFleetGolden compares every format with its golden file (go test -run FleetGolden -update rewrites them).
func TestFleetGolden(t *testing.T) {
	withoutRace.Delegate(t)
	for format, file := range map[string]string{
		"text":     "report.txt",
		"json":     "report.json",
		"markdown": "report.md",
		"junit":    "report.junit.xml",
		"sarif":    "report.sarif.json",
	} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := fleet(t, "--inventory", fleetInventory, "--format", format)
			if code != exitAllowed || errOut != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			golden(t, filepath.Join("fleet", file), out)
		})
	}
}

// TestFleetVerdicts checks what the testdata inventory's clusters are found to be, independently of the
// golden files: each scenario's verdict and the rules that block it.
func TestFleetVerdicts(t *testing.T) {
	r, _ := fleetJSONReport(t, "--inventory", fleetInventory)
	want := []struct {
		scenario, cluster string
		blockedBy         []string
	}{
		{"ready", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd", nil},
		{"regulated tenant with SM4", "2b4d6f81-3a5c-4e7f-9a1b-2c3d4e5f6a7b", nil},
		{"guestAgent too old", "5e3a1c9d-0b6f-4c1a-9d1e-2f4b6a8c0e12", []string{"PRECHECK-VER-002"}},
		{"regulated (by tag) with generalCipher", "6c1f3e5a-7b9d-4f2e-8a4c-6e8f0a2c4e6a", []string{"PRECHECK-TEN-001"}},
		{"busy", "8d2e4f6a-0b1c-4d3e-9f5a-7b8c9d0e1f2a", []string{"PRECHECK-CLU-002"}},
		{"already encrypted", "9e3f5a7b-1c2d-4e4f-8a6b-8c9d0e1f2a3b", []string{"PRECHECK-CLU-003"}},
		{"facts missing", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", []string{"PRECHECK-FACT-001", "PRECHECK-FACT-001"}},
		{"no encrypt: the call from the flags", "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e", nil},
		{"degraded (a warning)", "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f", nil},
		{"key disabled", "d4e5f6a7-b8c9-4d0e-9f1a-3b4c5d6e7f8a", []string{"PRECHECK-KEY-002"}},
		{"too old and in DR", "e5f6a7b8-c9d0-4e1f-8a2b-4c5d6e7f8a9b", []string{"PRECHECK-CLU-004", "PRECHECK-VER-001"}},
		{"algorithm from the flags", "f6a7b8c9-d0e1-4f2a-9b3c-5d6e7f8a9b0c", nil},
	}
	if len(r.Clusters) != len(want) {
		t.Fatalf("%d clusters, want %d", len(r.Clusters), len(want))
	}
	for i, w := range want {
		c := r.Clusters[i]
		var codes []string
		for _, v := range c.Violations {
			codes = append(codes, v.Code)
		}
		wantVerdict := verdictReady
		if w.blockedBy != nil {
			wantVerdict = verdictBlocked
		}
		if c.ClusterID != w.cluster || c.Verdict != wantVerdict || !slices.Equal(codes, w.blockedBy) {
			t.Errorf("%s: cluster %s %s blocked by %v, want %s %s blocked by %v",
				w.scenario, c.ClusterID, c.Verdict, codes, w.cluster, wantVerdict, w.blockedBy)
		}
		if !slices.ContainsFunc(c.Warnings, func(v policy.Violation) bool { return v.Code == "PRECHECK-OPS-001" }) {
			t.Errorf("%s: no restart warning: %+v", w.scenario, c.Warnings)
		}
	}
	s := r.Summary
	if s.Total != 12 || s.Ready != 5 || s.Blocked != 7 {
		t.Errorf("summary %d total, %d ready, %d blocked; want 12, 5, 7", s.Total, s.Ready, s.Blocked)
	}
	// FACT-001 denies one cluster twice: it blocks one cluster.
	i := slices.IndexFunc(s.BlockedBy, func(r fleetReason) bool { return r.Code == "PRECHECK-FACT-001" })
	if i < 0 || s.BlockedBy[i].Clusters != 1 || s.BlockedBy[i].Title != "fact unknown" {
		t.Errorf("blocked_by: %+v", s.BlockedBy)
	}
	if len(s.BlockedBy) != 8 || len(s.WarnedBy) != 2 || s.WarnedBy[0].Code != "PRECHECK-OPS-001" || s.WarnedBy[0].Clusters != 12 {
		t.Errorf("blocked_by %+v\nwarned_by %+v", s.BlockedBy, s.WarnedBy)
	}
	if r.At != "2026-06-01T00:00:00Z" || r.Policy != "embedded default" {
		t.Errorf("at %q, policy %q", r.At, r.Policy)
	}
}

// TestFleetJSONRoundTrip: the JSON report reads back into the report type and writes out the same bytes.
func TestFleetJSONRoundTrip(t *testing.T) {
	r, out := fleetJSONReport(t, "--inventory", fleetInventory)
	var again bytes.Buffer
	if err := (fleetJSON{}).writeFleet(&again, r, false); err != nil {
		t.Fatal(err)
	}
	if again.String() != out {
		t.Errorf("the report does not round-trip:\n--- written\n%s\n--- read back and written\n%s", out, again.String())
	}
	var r2 fleetReport
	if err := json.Unmarshal(again.Bytes(), &r2); err != nil || !reflect.DeepEqual(r, &r2) {
		t.Errorf("unmarshal(marshal(report)) differs: %v", err)
	}
}

func TestFleetCSVMatchesJSON(t *testing.T) {
	_, fromJSON := fleetJSONReport(t, "--inventory", fleetInventory)
	_, fromCSV := fleetJSONReport(t, "--inventory", "testdata/fleet/inventory.csv")
	if fromJSON != fromCSV {
		t.Errorf("the CSV and JSON inventories of the same clusters give different reports:\n--- json\n%s\n--- csv\n%s", fromJSON, fromCSV)
	}
}

func TestFleetEnginesAgree(t *testing.T) {
	_, rego := fleetJSONReport(t, "--inventory", fleetInventory, "--engine", "rego")
	_, wasm := fleetJSONReport(t, "--inventory", fleetInventory, "--engine", "wasm")
	_, byDefault := fleetJSONReport(t, "--inventory", fleetInventory)
	if rego != wasm || wasm != byDefault {
		t.Errorf("engines disagree:\n--- rego\n%s\n--- wasm\n%s", rego, wasm)
	}
	_, help, _ := precheck(t, "", "fleet", "-h")
	if !strings.Contains(help, `(default "wasm")`) {
		t.Errorf("usage does not say the engine defaults to wasm:\n%s", help)
	}
}

// TestFleetSARIF checks the SARIF log's structure: the tool, a rule per code, and results that reference
// their rule by id and index, at a logical location naming the cluster.
func TestFleetSARIF(t *testing.T) {
	code, out, _ := fleet(t, "--inventory", fleetInventory, "--format", "sarif")
	if code != exitAllowed {
		t.Fatalf("exit %d", code)
	}
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name, InformationURI, Version string
					Rules                         []struct {
						ID               string
						ShortDescription struct{ Text string }
						Help             struct{ Text string }
					}
				}
			}
			Results []struct {
				RuleID    string
				RuleIndex *int
				Level     string
				Message   struct{ Text string }
				Locations []struct {
					LogicalLocations []struct{ Name, FullyQualifiedName, Kind string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-2.1.0") || len(log.Runs) != 1 {
		t.Fatalf("version %q, $schema %q, %d runs", log.Version, log.Schema, len(log.Runs))
	}
	run := log.Runs[0]
	d := run.Tool.Driver
	if d.Name != "precheck" || !strings.HasPrefix(d.InformationURI, "https://") || d.Version == "" {
		t.Errorf("driver %q %q %q", d.Name, d.InformationURI, d.Version)
	}
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	ruleIDs := map[string]bool{}
	for _, r := range d.Rules {
		rule, ok := p.Catalog().Lookup(r.ID)
		if !ok || r.ShortDescription.Text != rule.Title || r.Help.Text != rule.Remediation || ruleIDs[r.ID] {
			t.Errorf("rule %+v: not the catalog's %+v (or listed twice)", r, rule)
		}
		ruleIDs[r.ID] = true
	}
	r, _ := fleetJSONReport(t, "--inventory", fleetInventory)
	findings, levels := 0, map[string]int{}
	for _, c := range r.Clusters {
		findings += len(c.Violations) + len(c.Warnings)
		for _, v := range slices.Concat(c.Violations, c.Warnings) {
			if !ruleIDs[v.Code] {
				t.Errorf("code %s has no rule", v.Code)
			}
		}
	}
	if len(run.Results) != findings {
		t.Errorf("%d results for %d findings", len(run.Results), findings)
	}
	for _, res := range run.Results {
		levels[res.Level]++
		if res.RuleIndex == nil || *res.RuleIndex >= len(d.Rules) || d.Rules[*res.RuleIndex].ID != res.RuleID {
			t.Errorf("result for %s: ruleIndex %v does not name its rule", res.RuleID, res.RuleIndex)
		}
		if res.Message.Text == "" || len(res.Locations) != 1 || len(res.Locations[0].LogicalLocations) != 1 {
			t.Fatalf("result %+v", res)
		}
		loc := res.Locations[0].LogicalLocations[0]
		project, cluster, _ := strings.Cut(loc.FullyQualifiedName, "/")
		if loc.Name != cluster || len(project) != 32 || len(cluster) != 36 {
			t.Errorf("location %+v does not name project/cluster", loc)
		}
		if strings.HasPrefix(res.RuleID, "PRECHECK-OPS-") && res.Level != "warning" {
			t.Errorf("the restart warning is at level %s", res.Level)
		}
	}
	// 8 violations deny 7 clusters (one has two, one FACT-001 twice, so 9); 12 restart warnings and 1 degraded.
	if levels["error"] != 9 || levels["warning"] != 13 || len(levels) != 2 {
		t.Errorf("levels %v, want 9 error and 13 warning", levels)
	}
}

// TestFleetJUnit reads the JUnit report as a CI system does.
func TestFleetJUnit(t *testing.T) {
	code, out, _ := fleet(t, "--inventory", fleetInventory, "--format", "junit")
	if code != exitAllowed {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Cases    []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, out)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d test suites", len(doc.Suites))
	}
	s := doc.Suites[0]
	if doc.Tests != 12 || doc.Failures != 7 || s.Tests != 12 || s.Failures != 7 || len(s.Cases) != 12 {
		t.Errorf("tests %d/%d, failures %d/%d, %d cases", doc.Tests, s.Tests, doc.Failures, s.Failures, len(s.Cases))
	}
	r, _ := fleetJSONReport(t, "--inventory", fleetInventory)
	for i, tc := range s.Cases {
		c := r.Clusters[i]
		if tc.Name != c.ProjectID+"/"+c.ClusterID || tc.Classname == "" {
			t.Errorf("case %d: name %q classname %q", i, tc.Name, tc.Classname)
		}
		if (tc.Failure != nil) != (c.Verdict == verdictBlocked) {
			t.Errorf("%s: %s, failure %v", tc.Name, c.Verdict, tc.Failure)
			continue
		}
		for _, v := range c.Violations {
			if !strings.Contains(tc.Failure.Message, v.Code) || !strings.Contains(tc.Failure.Text, v.Message) {
				t.Errorf("%s: failure does not give %s %q:\n%+v", tc.Name, v.Code, v.Message, tc.Failure)
			}
		}
		if !strings.Contains(tc.SystemOut, "PRECHECK-OPS-001") {
			t.Errorf("%s: warnings not in system-out: %q", tc.Name, tc.SystemOut)
		}
	}
}

func TestFleetFailOnBlocked(t *testing.T) {
	code, _, _ := fleet(t, "--inventory", fleetInventory, "--fail-on-blocked")
	if code != exitDenied {
		t.Errorf("blocked clusters with --fail-on-blocked: exit %d, want %d", code, exitDenied)
	}
	code, _, _ = fleet(t, "--inventory", fleetInventory)
	if code != exitAllowed {
		t.Errorf("blocked clusters without --fail-on-blocked: exit %d, want %d", code, exitAllowed)
	}
	// The ready clusters alone pass.
	r, _ := fleetJSONReport(t, "--inventory", fleetInventory)
	inv, err := facts.ReadInventory(fleetInventory)
	if err != nil {
		t.Fatal(err)
	}
	var ready []facts.Entry
	for i, c := range r.Clusters {
		if c.Verdict == verdictReady {
			ready = append(ready, inv.Entries[i])
		}
	}
	path := writeFleetInventory(t, ready)
	code, out, _ := fleet(t, "--inventory", path, "--fail-on-blocked")
	if code != exitAllowed || !strings.HasPrefix(out, "FLEET 5 clusters: 5 ready, 0 blocked") {
		t.Errorf("only ready clusters with --fail-on-blocked: exit %d\n%s", code, out)
	}
	code, out, _ = fleet(t, "--inventory", writeFleetInventory(t, []facts.Entry{}), "--fail-on-blocked")
	if code != exitAllowed || !strings.HasPrefix(out, "FLEET 0 clusters: 0 ready, 0 blocked") {
		t.Errorf("an empty inventory: exit %d\n%s", code, out)
	}
}

// TestFleetIntendedCall: the request body is the entry's encrypt, with the members it lacks from the flags.
func TestFleetIntendedCall(t *testing.T) {
	flags := facts.Encrypt{CryptAlgorithm: "generalCipher", MasterKeyID: "flag-key", MasterKeyName: "flag-name"}
	tests := []struct {
		name    string
		entry   *facts.Encrypt
		flags   facts.Encrypt
		want    string
		blocked []string
	}{
		{"flags only", nil, flags, `{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"flag-key","master_key_name":"flag-name"}}`, nil},
		{"entry wins", &facts.Encrypt{CryptAlgorithm: "SMcompatible", MasterKeyID: "k", MasterKeyName: "n"}, flags, `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k","master_key_name":"n"}}`, nil},
		{"members mixed", &facts.Encrypt{MasterKeyID: "k"}, flags, `{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"k","master_key_name":"flag-name"}}`, nil},
		{"neither", &facts.Encrypt{}, facts.Encrypt{}, `{"encrypt":{}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &facts.Entry{ProjectID: "p", ClusterID: "c", Encrypt: tt.entry, Tenant: &policy.Tenant{Class: "x"}}
			in := fleetlib.Input(e, tt.flags)
			if string(in.Request.Body) != tt.want || in.Request.ProjectID != "p" || in.Request.ClusterID != "c" || in.Tenant != e.Tenant {
				t.Errorf("input %+v, body %s; want body %s", in.Request, in.Request.Body, tt.want)
			}
		})
	}
	// Without an intended call the policy names each missing member.
	entry := facts.Entry{ProjectID: "89cd04f168b84af6be287f71730fdb4b", ClusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}
	path := writeFleetInventory(t, []facts.Entry{entry})
	code, out, _ := precheck(t, "", "fleet", "--inventory", path, "--format", "json")
	if code != exitAllowed || !strings.Contains(out, `"PRECHECK-REQ-002"`) || !strings.Contains(out, `"PRECHECK-REQ-003"`) {
		t.Errorf("no intended call: exit %d\n%s", code, out)
	}
}

func TestFleetBadUsageAndInventory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	notArray := write("object.json", `{"cluster_id": "x"}`)
	unknownMember := write("unknown.json", `[{"cluster_id": "a"}, {"cluster_id": "b", "clutser": {}}]`)
	noID := write("noid.json", `[{"cluster_id": "a"}, {"project_id": "p"}]`)
	twice := write("twice.json", `[{"cluster_id": "a"}, {"cluster_id": "a"}]`)
	badBool := write("bad.csv", "cluster_id,encrypted\na,false\nb,maybe\n")
	badColumn := write("column.csv", "cluster_id,guest_agent\na,8.3.0.200\n")
	ragged := write("ragged.csv", "cluster_id,version\na,8.1.3\nb,8.1.3,extra\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"--inventory", filepath.Join(dir, "nope.json")}, "no such file"},
		{"not an array", []string{"--inventory", notArray}, "not a JSON array of clusters"},
		{"unknown member", []string{"--inventory", unknownMember}, `entry 2: json: unknown field "clutser"`},
		{"no cluster_id", []string{"--inventory", noID}, "entry 2: no cluster_id"},
		{"listed twice", []string{"--inventory", twice}, "entry 2: cluster a is listed twice"},
		{"bad CSV cell", []string{"--inventory", badBool}, `line 3, column encrypted: "maybe" is not true or false`},
		{"unknown CSV column", []string{"--inventory", badColumn}, `unknown column "guest_agent"`},
		{"ragged CSV", []string{"--inventory", ragged}, "line 3"},
		{"no inventory", nil, "no inventory"},
		{"bad --at", []string{"--inventory", fleetInventory, "--at", "tomorrow"}, `for "--at" flag`},
		{"unknown format", []string{"--inventory", fleetInventory, "--format", "xml"}, `unknown format "xml"`},
		{"unknown engine", []string{"--inventory", fleetInventory, "--engine", "jit"}, `unknown engine "jit"`},
		{"no workers", []string{"--inventory", fleetInventory, "--concurrency", "0"}, "--concurrency 0"},
		{"stray argument", []string{fleetInventory}, "unexpected argument"},
		{"unknown flag", []string{"--inventroy", fleetInventory}, "unknown flag: --inventroy (did you mean --inventory?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := precheck(t, "", append([]string{"fleet"}, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\n%s", code, exitUsage, out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, errOut)
			}
			if out != "" {
				t.Errorf("a report was written:\n%s", out)
			}
		})
	}
}

func TestFleetBrokenPolicyIsExit3(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package precheck.rules.broken\n\nx := y\n"), 0o644)
	code, out, errOut := fleet(t, "--inventory", fleetInventory, "--policy", dir)
	if code != exitPolicy || !strings.Contains(errOut, "broken.rego:3:6") || out != "" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// failingBackend decides with the rego engine but fails on the documents that name one cluster, as an
// engine error would.
type failingBackend struct {
	policy.Backend
	cluster string
}

func (b failingBackend) Prepare(ctx context.Context, p *policy.Policy) (policy.Evaluator, error) {
	ev, err := b.Backend.Prepare(ctx, p)
	return failingEvaluator{ev, b.cluster}, err
}

type failingEvaluator struct {
	policy.Evaluator
	cluster string
}

func (e failingEvaluator) Eval(ctx context.Context, doc *policy.Document, now time.Time) (*policy.Decision, error) {
	if bytes.Contains(doc.JSON(), []byte(e.cluster)) {
		// An input error on purpose: fleet must still call it the engine's (exit 3), not the inventory's.
		return nil, &policy.InputError{Msg: "the engine could not decide"}
	}
	return e.Evaluator.Eval(ctx, doc, now)
}

// TestFleetErrorStopsTheRun: an error deciding one cluster fails the whole run, naming the cluster, rather
// than leaving the cluster out of the report.
func TestFleetErrorStopsTheRun(t *testing.T) {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	const bad = "9e3f5a7b-1c2d-4e4f-8a6b-8c9d0e1f2a3b"
	eng, err := policy.New(ctx, p, policy.WithBackend(failingBackend{policy.Rego(), bad}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	inv, err := facts.ReadInventory(fleetInventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 4} {
		var decided atomic.Int64
		ds, err := decideFleet(ctx, eng, inv.Entries, facts.Encrypt{}, workers, func() { decided.Add(1) })
		if err == nil || ds != nil {
			t.Fatalf("%d workers: no error, %d decisions", workers, len(ds))
		}
		if want := "entry 6 (cluster " + bad + "): input: the engine could not decide"; !strings.Contains(err.Error(), want) {
			t.Errorf("%d workers: error %q does not say %q", workers, err, want)
		}
		if exitCode(err) != exitPolicy {
			t.Errorf("%d workers: exit %d, want %d", workers, exitCode(err), exitPolicy)
		}
		if workers == 1 && decided.Load() != 5 {
			t.Errorf("one worker decided %d clusters before the failing sixth, then should have stopped", decided.Load())
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := decideFleet(cancelled, eng, inv.Entries, facts.Encrypt{}, 2, func() {}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}

// TestFleetProgress: a progress bar on stderr for a large inventory when a person watches a terminal,
// never otherwise.
func TestFleetProgress(t *testing.T) {
	inv, err := facts.ReadInventory(fleetInventory)
	if err != nil {
		t.Fatal(err)
	}
	large := writeFleetInventory(t, fleetMix(inv.Entries, fleetProgressOver+1))
	small := writeFleetInventory(t, fleetMix(inv.Entries, fleetProgressOver))
	for _, tt := range []struct {
		name      string
		inventory string
		terminal  bool
		want      string
	}{
		{"large on a terminal", large, true, fmt.Sprintf("] %d/%d clusters\n", fleetProgressOver+1, fleetProgressOver+1)},
		{"large in a pipe", large, false, ""},
		{"small on a terminal", small, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, terminal: tt.terminal}
			code := run(context.Background(), e, slices.Concat([]string{"fleet", "--inventory", tt.inventory, "--format", "json"}, fleetArgs))
			if code != exitAllowed {
				t.Fatalf("exit %d\n%s", code, errOut.String())
			}
			if tt.want == "" && errOut.Len() > 0 || !strings.HasSuffix(errOut.String(), tt.want) {
				t.Errorf("stderr %q, want it to end in %q", errOut.String(), tt.want)
			}
			if !json.Valid(out.Bytes()) {
				t.Error("the progress bar got into the report")
			}
		})
	}
}

// fleetMix is n clusters cycling through the given entries (a realistic mix), each with its own cluster ID.
func fleetMix(entries []facts.Entry, n int) []facts.Entry {
	mix := make([]facts.Entry, n)
	for i := range mix {
		mix[i] = entries[i%len(entries)]
		mix[i].ClusterID = fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, i%0x10000, i)
	}
	return mix
}

// writeFleetInventory writes entries as a JSON inventory in a temporary directory and returns its path.
func writeFleetInventory(tb testing.TB, entries []facts.Entry) string {
	tb.Helper()
	data, err := json.Marshal(entries)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "inventory.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
