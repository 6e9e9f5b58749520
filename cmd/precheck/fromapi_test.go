package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// TestFromAPI holds every test of `check --from-api` and `fleet --from-api`. The SDK's providers read the
// process's environment, so the credentials are set once here (t.Setenv, which a parallel test may not
// call) and the tests under it run in parallel with each other.
func TestFromAPI(t *testing.T) {
	fromAPICredentials(t)
	t.Run("check/examples", testCheckFromAPIExamples)
	t.Run("check/provenance", testCheckFromAPIProvenance)
	t.Run("check/failures", testCheckFromAPIFailures)
	t.Run("check/usage", testCheckFromAPIUsage)
	t.Run("fleet/formats", testFleetFromAPIFormats)
	t.Run("fleet/usage", testFleetFromAPIUsage)
}

// TestFleetFromAPIAtScale runs the fleet verb over a thousand clusters, and a policy comparison: thousands
// of signed SDK requests and decisions, which under the race detector run in a binary without it
// (withoutRace). plugin/fleet's TestGatherThousandClusters gathers as many under the detector.
func TestFleetFromAPIAtScale(t *testing.T) {
	withoutRace.Delegate(t)
	fromAPICredentials(t)
	t.Run("thousand", testFleetFromAPIThousand)
	t.Run("compare", testFleetCompareFromAPI)
}

// fromAPICredentials gives the SDK's credential providers the fake's keys, for the test.
func fromAPICredentials(t *testing.T) {
	t.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
	// The SDK signs with it and sends it: a secret too, for the test that no secret is ever shown.
	t.Setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", fakeSecurityToken)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", "")
}

const fakeSecurityToken = "PrecheckFakeSecurityTokenValue0001"

// fakeFor starts a fake that knows what the example input document says about its cluster and key, and
// returns the arguments of `check --from-api` for the document's call, or why the API cannot express it.
func fakeFor(t *testing.T, doc *policy.Input) (srv *dwsfake.Server, args []string, skip string) {
	t.Helper()
	var body policy.EncryptBody
	if err := json.Unmarshal(doc.Request.Body, &body); err != nil || body.Encrypt == nil {
		return nil, nil, "the body is not an encrypt object of strings: flags cannot send it"
	}
	c := doc.Cluster
	switch {
	case c == nil:
		return nil, nil, "no cluster facts: ListClusterDetails always answers some"
	case c.Encrypted == nil:
		return nil, nil, "cluster.encrypted unknown: ShowClusterEncryptInfo always answers, encrypted or not"
	case doc.Key == nil && body.Encrypt.MasterKeyID != "":
		return nil, nil, "the call names a key and the document has no key facts: from the API, DescribeKey either describes that key or fails (exit 3)"
	case doc.Key != nil && doc.Key.KeyID != body.Encrypt.MasterKeyID:
		return nil, nil, "key facts about another key than the call's: DescribeKey is asked about the call's key"
	}
	srv = dwsfake.New()
	t.Cleanup(srv.Close)
	fc := dwsfake.Cluster{
		ProjectID: doc.Request.ProjectID, ID: doc.Request.ClusterID, Name: "example",
		Version: c.Version, Status: c.Status, SubStatus: c.SubStatus, ActionProgress: c.ActionProgress,
		EnterpriseProjectID: c.EnterpriseProjectID,
	}
	if c.TaskStatus == nil {
		fc.Omit = append(fc.Omit, "task_status")
	} else {
		fc.TaskStatus = *c.TaskStatus
	}
	if c.ActionProgress == nil {
		fc.Omit = append(fc.Omit, "action_progress")
	}
	if c.Tags == nil {
		fc.Omit = append(fc.Omit, "tags")
	}
	for _, tag := range c.Tags {
		fc.Tags = append(fc.Tags, dwsfake.Tag{Key: tag.Key, Value: tag.Value})
	}
	if *c.Encrypted {
		fc.Encryption = &dwsfake.Encryption{MasterKeyID: dwsfake.ExampleKeyID, CryptAlgorithm: "generalCipher"}
	}
	srv.PutCluster(fc)
	switch {
	case c.DRRelationship == nil:
		// An answer without the list: the API did not say (dwsapi leaves the fact unknown).
		srv.Fail(dwsfake.ListDisasterRecover, dwsfake.Fault{Status: 200, Body: []byte(`{}`)})
	case *c.DRRelationship:
		srv.AddDisasterRecovery(doc.Request.ClusterID, "0b7c3d1e-0000-4000-8000-000000000001")
	}
	if k := doc.Key; k != nil {
		srv.PutKey(dwsfake.Key{ID: k.KeyID, Alias: body.Encrypt.MasterKeyName, State: k.KeyState, Spec: k.KeySpec})
	}
	args = []string{"check", "--from-api", "--endpoint", srv.URL, "--project-id", doc.Request.ProjectID,
		"--cluster-id", doc.Request.ClusterID, "--algorithm", body.Encrypt.CryptAlgorithm, "--key-id", body.Encrypt.MasterKeyID}
	if body.Encrypt.MasterKeyName != "" {
		args = append(args, "--key-name", body.Encrypt.MasterKeyName)
	}
	if c.GuestAgentVersion != "" {
		args = append(args, "--agent-version", c.GuestAgentVersion)
	}
	// The tenant class from an inventory, as an operator keeps it beside the API.
	if doc.Tenant != nil {
		path := filepath.Join(t.TempDir(), "tenants.csv")
		os.WriteFile(path, []byte("cluster_id,tenant_class\n"+doc.Request.ClusterID+","+doc.Tenant.Class+"\n"), 0o644)
		args = append(args, "--inventory", path)
	}
	return srv, args, ""
}

// gatheredDecision is `check --from-api --format json`'s output.
type gatheredDecision struct {
	policy.Decision
	Explanation *policy.Explanation `json:"explanation"`
	Provenance  []factSource        `json:"provenance"`
}

// testCheckFromAPIExamples: for every example input, the API's facts give the decision the hand-written
// document gives.
func testCheckFromAPIExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../examples/inputs/*.json")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			var doc policy.Input
			if err := json.Unmarshal(must(os.ReadFile(f)), &doc); err != nil {
				t.Skipf("the API cannot express it: not a document of the input's types (%v)", err)
			}
			_, args, skip := fakeFor(t, &doc)
			if skip != "" {
				t.Skip("the API cannot express it: " + skip)
			}
			wantCode, wantOut, _ := precheck(t, "", "check", "--input", f, "--format", "json")
			code, out, errOut := precheck(t, "", append(args, "--format", "json")...)
			if code != wantCode {
				t.Fatalf("exit %d, --input exits %d\n%s%s", code, wantCode, out, errOut)
			}
			var got gatheredDecision
			var want policy.Decision
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(wantOut), &want)
			if !reflect.DeepEqual(got.Decision, want) {
				t.Errorf("from the API:\n%s\nfrom the document:\n%s", out, wantOut)
			}
			if len(got.Provenance) == 0 {
				t.Error("no provenance")
			}
		})
	}
}

// testCheckFromAPIProvenance: text, JSON and --explain say where each fact came from.
func testCheckFromAPIProvenance(t *testing.T) {
	t.Parallel()
	var doc policy.Input
	json.Unmarshal(must(os.ReadFile(allowedExample)), &doc)
	srv, args, _ := fakeFor(t, &doc)

	code, out, errOut := precheck(t, "", args...)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ALLOWED the call may be made`),
		regexp.MustCompile(`(?m)^facts \(field, value, source\)$`),
		regexp.MustCompile(`(?m)^  cluster\.version +"8\.1\.3\.310" +DWS ListClusterDetails$`),
		regexp.MustCompile(`(?m)^  cluster\.encrypted +false +DWS ShowClusterEncryptInfo$`),
		regexp.MustCompile(`(?m)^  cluster\.dr_relationship +false +DWS ListDisasterRecover$`),
		regexp.MustCompile(`(?m)^  cluster\.guest_agent_version +"8\.3\.0\.200" +flag --agent-version$`),
		regexp.MustCompile(`(?m)^  key\.key_state +"2" +KMS DescribeKey$`),
		regexp.MustCompile(`(?m)^  tenant\.class +"default" +inventory .*tenants\.csv$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("text output lacks %s:\n%s", want, out)
		}
	}

	// JSON: the decision's members at the top level, and the provenance beside them.
	_, out, _ = precheck(t, "", append(args, "--format", "json", "--tenant-class", "regulated")...)
	var got gatheredDecision
	var members map[string]json.RawMessage
	if json.Unmarshal([]byte(out), &got) != nil || json.Unmarshal([]byte(out), &members) != nil {
		t.Fatalf("json:\n%s", out)
	}
	if _, ok := members["allowed"]; !ok || members["provenance"] == nil || members["explanation"] != nil {
		t.Errorf("top-level members %v", slices.Sorted(maps.Keys(members)))
	}
	sources := map[string]factSource{}
	for _, s := range got.Provenance {
		var compact bytes.Buffer
		json.Compact(&compact, s.Value)
		s.Value = compact.Bytes()
		sources[s.Field] = s
	}
	if s := sources["tenant.class"]; s.Source != "flag --tenant-class" || string(s.Value) != `"regulated"` {
		t.Errorf("tenant.class %+v: the flag stands before the inventory", s)
	}
	if s := sources["key.key_spec"]; s.Source != "KMS DescribeKey" || string(s.Value) != `"AES_256"` {
		t.Errorf("key.key_spec %+v", s)
	}
	if s := sources["cluster.tags"]; s.Source != "DWS ListClusterDetails" || string(s.Value) != `[{"key":"env","value":"prod"}]` {
		t.Errorf("cluster.tags %+v", s)
	}

	// --explain: the explanation and the provenance, in JSON and in text.
	_, out, _ = precheck(t, "", append(args, "--format", "json", "--explain")...)
	got = gatheredDecision{}
	if json.Unmarshal([]byte(out), &got) != nil || got.Explanation == nil || len(got.Provenance) != len(sources) {
		t.Errorf("--explain json:\n%s", out)
	}
	_, out, errOut = precheck(t, "", append(args, "--explain")...)
	if !strings.Contains(out, "checked and passed") || !strings.Contains(out, "facts (field, value, source)") {
		t.Errorf("--explain text:\n%s", out)
	}
	noSecrets(t, srv, out+errOut)
}

// testCheckFromAPIFailures: a failing DWS or KMS call exits 3 naming the call and its status, and no
// credential or signature reaches the output, even when the API echoes the request's headers back.
func testCheckFromAPIFailures(t *testing.T) {
	t.Parallel()
	var doc policy.Input
	json.Unmarshal(must(os.ReadFile(allowedExample)), &doc)
	for _, tt := range []struct {
		endpoint dwsfake.Endpoint
		target   string
		status   int
		call     string
	}{
		{dwsfake.ListClusterDetails, doc.Request.ClusterID, 500, "DWS ListClusterDetails"},
		{dwsfake.ShowClusterEncryptInfo, doc.Request.ClusterID, 503, "DWS ShowClusterEncryptInfo"},
		{dwsfake.ListDisasterRecover, doc.Request.ProjectID, 403, "DWS ListDisasterRecover"},
		{dwsfake.DescribeKey, dwsfake.ExampleKeyID, 500, "KMS DescribeKey"},
	} {
		t.Run(tt.call, func(t *testing.T) {
			t.Parallel()
			srv, args, _ := fakeFor(t, &doc)
			srv.FailFor(tt.endpoint, tt.target, dwsfake.Fault{Status: tt.status, Echo: true})
			for _, format := range []string{"text", "json"} {
				code, out, errOut := precheck(t, "", append(args, "--format", format)...)
				if code != exitPolicy || out != "" {
					t.Errorf("exit %d, want %d; stdout %q", code, exitPolicy, out)
				}
				if !strings.Contains(errOut, tt.call) || !strings.Contains(errOut, "HTTP "+strconv.Itoa(tt.status)) ||
					!strings.HasPrefix(errOut, "precheck: could not decide: ") || strings.Count(errOut, "\n") != 1 {
					t.Errorf("stderr does not name %s and HTTP %d on one line: %q", tt.call, tt.status, errOut)
				}
				// The fake echoed the request's headers into its error: the redaction must have caught them.
				if !strings.Contains(errOut, "request headers:") {
					t.Errorf("the fault did not echo the headers: %q", errOut)
				}
				noSecrets(t, srv, out+errOut)
			}
		})
	}
}

// noSecrets fails if text holds the AK, the SK, the security token or any signature the fake received.
func noSecrets(t *testing.T, srv *dwsfake.Server, text string) {
	t.Helper()
	secrets := []string{dwsfake.TestAK, dwsfake.TestSK, fakeSecurityToken}
	signature := regexp.MustCompile(`Signature=([0-9a-f]+)`)
	for _, r := range srv.Requests() {
		if m := signature.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			secrets = append(secrets, m[1])
		}
	}
	if len(secrets) == 3 {
		t.Fatal("the fake received no signed request")
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("the output holds a secret (%.6s...):\n%s", s, text)
		}
	}
}

func testCheckFromAPIUsage(t *testing.T) {
	t.Parallel()
	call := []string{"check", "--from-api", "--project-id", dwsfake.ExampleProjectID, "--cluster-id", dwsfake.ExampleClusterID,
		"--algorithm", "generalCipher", "--key-id", dwsfake.ExampleKeyID}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no region", call, "--from-api needs --region (the SDK's region name, e.g. cn-north-4) or --endpoint"},
		{"unknown region", append(call, "--region", "mars-north-1"), `region "mars-north-1" is not in the SDK's DWS region catalogue`},
		{"bad endpoint", append(call, "--endpoint", "dws.example"), `--endpoint "dws.example": want an http(s) URL`},
		{"plain http off loopback", append(call, "--endpoint", "http://dws.example.com"), `plain http sends the signed credentials in clear`},
		{"plain http KMS off loopback", append(call, "--endpoint", "https://dws.example.com", "--kms-endpoint", "http://10.0.0.1:8080"), `--kms-endpoint "http://10.0.0.1:8080": plain http`},
		{"no project", []string{"check", "--from-api", "--region", "cn-north-4", "--cluster-id", "x"}, "--from-api needs --project-id"},
		{"no cluster", []string{"check", "--from-api", "--region", "cn-north-4", "--project-id", dwsfake.ExampleProjectID}, "--from-api needs --cluster-id"},
		{"a fact the API answers", append(call, "--region", "cn-north-4", "--status", "AVAILABLE"), "--status with --from-api: the API answers cluster.status"},
		{"and --input", append(call, "--input", allowedExample), "--input and --from-api are two sources"},
		{"region alone", []string{"check", "--input", allowedExample, "--region", "cn-north-4"}, "--region needs --from-api"},
		{"inventory alone", []string{"check", "--input", allowedExample, "--inventory", "x.csv"}, "--inventory needs --from-api"},
		{"bad cluster ID", []string{"check", "--from-api", "--endpoint", "http://127.0.0.1:1", "--project-id", dwsfake.ExampleProjectID,
			"--cluster-id", "../x"}, "cannot be asked about"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := precheck(t, "", tt.args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) || !strings.HasSuffix(errOut, "; see 'precheck check --help'\n") {
				t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, errOut, tt.want)
			}
		})
	}
}

// otherProject is the second project of the fleet fakes.
const otherProject = "0123456789abcdef0123456789abcdef"

// fleetAPIArgs are the flags every fleet --from-api test gives: the clock, and a call whose key the fakes know.
var fleetAPIArgs = []string{"--at", "2026-06-01T00:00:00Z", "--algorithm", "generalCipher",
	"--key-id", dwsfake.ExampleKeyID, "--key-name", dwsfake.ExampleKeyName}

// newFleetFake starts a fake with n generated clusters across the example project and otherProject, a DR
// pair and the example key, and writes the inventory an operator keeps beside the API (guestAgent versions,
// tenant classes).
func newFleetFake(t testing.TB, n int) (*dwsfake.Server, string) {
	srv := dwsfake.New()
	t.Cleanup(srv.Close)
	for _, c := range dwsfake.GenerateClusters(n, dwsfake.ExampleProjectID, otherProject) {
		srv.PutCluster(c)
	}
	srv.PutKey(dwsfake.ExampleKey())
	if n > 2 {
		srv.AddDisasterRecovery(dwsfake.GeneratedClusterID(0), dwsfake.GeneratedClusterID(2))
	}
	var csv strings.Builder
	csv.WriteString("project_id,cluster_id,guest_agent_version,tenant_class\n")
	for i, c := range srv.Clusters() {
		agent, class := "8.3.0.200", ""
		if i%13 == 12 {
			agent = "8.3.0.100"
		}
		if i%5 == 0 {
			class = "regulated"
		}
		fmt.Fprintf(&csv, "%s,%s,%s,%s\n", c.ProjectID, c.ID, agent, class)
	}
	path := filepath.Join(t.TempDir(), "agents.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, path
}

// fleetTargetArgs are the --target flags of the fleet fakes' two projects.
func fleetTargetArgs(srv *dwsfake.Server) []string {
	return []string{"--endpoint", srv.URL, "--target", dwsfake.ExampleProjectID, "--target", otherProject}
}

// renderInventory writes the inventory file that says what the fake knows, from the fake's own records
// (not through dwsapi) and the agents inventory, in the order fleet --from-api reports (by target, then by
// cluster ID), leaving out the clusters skip names.
func renderInventory(t testing.TB, srv *dwsfake.Server, agentsPath string, skip ...string) string {
	agents, err := facts.ReadInventory(agentsPath)
	if err != nil {
		t.Fatal(err)
	}
	inDR := map[string]bool{}
	for _, dr := range srv.DisasterRecoveries() {
		inDR[dr.PrimaryClusterID], inDR[dr.StandbyClusterID] = true, true
	}
	k, _ := srv.Key(dwsfake.ExampleKeyID)
	clusters := srv.Clusters()
	project := map[string]int{dwsfake.ExampleProjectID: 0, otherProject: 1}
	slices.SortFunc(clusters, func(a, b dwsfake.Cluster) int {
		return cmp.Or(cmp.Compare(project[a.ProjectID], project[b.ProjectID]), cmp.Compare(a.ID, b.ID))
	})
	var entries []facts.Entry
	for _, c := range clusters {
		if slices.Contains(skip, c.ID) {
			continue
		}
		e := facts.Entry{ProjectID: c.ProjectID, ClusterID: c.ID,
			Cluster: &policy.Cluster{Version: c.Version, Status: c.Status, SubStatus: c.SubStatus, TaskStatus: policy.String(c.TaskStatus),
				ActionProgress: c.ActionProgress, Encrypted: policy.Bool(c.Encryption != nil), DRRelationship: policy.Bool(inDR[c.ID]),
				EnterpriseProjectID: c.EnterpriseProjectID},
			Key: &policy.Key{KeyID: k.ID, KeyState: k.State, KeySpec: k.Spec},
		}
		for _, tag := range c.Tags {
			e.Cluster.Tags = append(e.Cluster.Tags, policy.Tag{Key: tag.Key, Value: tag.Value})
		}
		f, _ := agents.Facts(context.Background(), facts.Request{ProjectID: c.ProjectID, ClusterID: c.ID})
		if f.Cluster != nil {
			e.Cluster.GuestAgentVersion = f.Cluster.GuestAgentVersion
		}
		e.Tenant = f.Tenant
		entries = append(entries, e)
	}
	return writeFleetInventory(t, entries)
}

// testFleetFromAPIThousand is the acceptance test of fleet --from-api: 1,000 clusters in two projects,
// throttling on for some calls, a rate limit, one cluster whose calls keep failing; every cluster once, the
// report the equivalent inventory file gives, the failing cluster "could not decide".
func testFleetFromAPIThousand(t *testing.T) {
	t.Parallel()
	const n, rate = 1000, 2000
	srv, agents := newFleetFake(t, n)
	broken := dwsfake.GeneratedClusterID(7)
	srv.FailFor(dwsfake.ListClusterDetails, broken, dwsfake.Fault{Status: 500, ErrorCode: "DWS.9999", ErrorMsg: "internal error", Echo: true})
	// Every 50th request for a cluster's details or encryption is throttled (429, Retry-After 0).
	srv.Throttle(dwsfake.Throttling{Endpoints: []dwsfake.Endpoint{dwsfake.ListClusterDetails, dwsfake.ShowClusterEncryptInfo}, Every: 50})

	// Both runs decide on the wasm engine: 2,000 decisions on the rego engine take long under the race
	// detector, and the engines agree (TestFleetEnginesAgree).
	start := time.Now()
	code, out, errOut := precheckEnv(t, nil, true, "", slices.Concat([]string{"fleet", "--from-api", "--inventory", agents,
		"--rate", strconv.Itoa(rate), "--format", "json", "--engine", "wasm"}, fleetTargetArgs(srv), fleetAPIArgs)...)
	t.Logf("fleet --from-api: %d clusters in %v; the fake throttled %d requests", n, time.Since(start), srv.Throttled())
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	// On a terminal, the progress bar, on stderr, to the end; the report is still clean JSON.
	if !strings.HasSuffix(errOut, fmt.Sprintf("] %d/%d clusters\n", n, n)) {
		t.Errorf("progress: stderr ends %q", errOut[max(0, len(errOut)-60):])
	}
	var got fleetReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("report: %v", err)
	}
	noSecrets(t, srv, out+errOut)

	// Every cluster exactly once; its details asked for exactly once but when throttled.
	seen := map[string]int{}
	for _, c := range got.Clusters {
		seen[c.ClusterID]++
	}
	details := map[string]int{}
	for _, r := range srv.Requests() {
		if r.Endpoint == dwsfake.ListClusterDetails && !r.Throttled {
			details[r.ClusterID]++
		}
	}
	for _, c := range srv.Clusters() {
		if seen[c.ID] != 1 || details[c.ID] != 1 {
			t.Errorf("cluster %s: %d times in the report, its details asked %d times", c.ID, seen[c.ID], details[c.ID])
		}
	}
	if len(got.Clusters) != n || srv.Throttled() == 0 {
		t.Fatalf("%d clusters reported, %d throttled", len(got.Clusters), srv.Throttled())
	}
	// Within the rate limit, retries included: no quarter of a second holds more than the rate allows
	// (and a little more: the fake stamps a request when it is served, which the scheduler may bunch).
	var times []time.Time
	for _, r := range srv.Requests() {
		times = append(times, r.Received)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i, j := 0, 0; j < len(times); j++ {
		for times[j].Sub(times[i]) > 250*time.Millisecond {
			i++
		}
		if j-i+1 > rate/4+rate/100+2 {
			t.Fatalf("%d requests within 250ms at %v: over --rate %d", j-i+1, times[i], rate)
		}
	}

	// The broken cluster could not be decided, says why, and counts.
	i := slices.IndexFunc(got.Clusters, func(c fleetCluster) bool { return c.ClusterID == broken })
	b := got.Clusters[i]
	if b.Verdict != verdictUndecided || !strings.Contains(b.Reason, "DWS ListClusterDetails") || !strings.Contains(b.Reason, "HTTP 500") ||
		len(b.Violations) != 0 || got.Summary.CouldNotDecide != 1 {
		t.Fatalf("the broken cluster: %+v, summary %+v", b, got.Summary)
	}

	// The rest is the report of the equivalent inventory file.
	code, wantOut, errOut := precheck(t, "", slices.Concat([]string{"fleet", "--inventory", renderInventory(t, srv, agents, broken),
		"--format", "json", "--engine", "wasm"}, fleetAPIArgs)...)
	if code != exitAllowed {
		t.Fatalf("from the inventory: exit %d\n%s", code, errOut)
	}
	var want fleetReport
	json.Unmarshal([]byte(wantOut), &want)
	got.Clusters = slices.Delete(got.Clusters, i, i+1)
	got.Summary.Total--
	got.Summary.CouldNotDecide--
	if !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.Marshal(got)
		t.Errorf("from the API (the broken cluster left out):\n%.3000s\nfrom the inventory:\n%.3000s", gotJSON, wantOut)
	}
	if want.Summary.Blocked == 0 || want.Summary.Ready == 0 {
		t.Errorf("a fleet without variety: %+v", want.Summary)
	}
}

// brokenFleetFake is a fake of four clusters, one of which (brokenCluster) keeps failing.
func brokenFleetFake(t *testing.T) (*dwsfake.Server, string) {
	srv, agents := newFleetFake(t, 4)
	srv.RemoveDisasterRecoveries()
	srv.FailFor(dwsfake.ShowClusterEncryptInfo, brokenCluster, dwsfake.Fault{Status: 503, Echo: true})
	return srv, agents
}

var brokenCluster = dwsfake.GeneratedClusterID(1)

// testFleetFromAPIFormats: every format reports the cluster that could not be decided, as SARIF and JUnit
// errors, and --fail-on-blocked fails on it as on a blocked one.
func testFleetFromAPIFormats(t *testing.T) {
	t.Parallel()
	srv, agents := brokenFleetFake(t)
	// SMcompatible: every cluster that could be decided is ready, whatever its tenant class.
	args := slices.Concat([]string{"fleet", "--from-api", "--inventory", agents, "--rate", "0", "--engine", "rego"}, fleetTargetArgs(srv),
		fleetAPIArgs, []string{"--algorithm", "SMcompatible"})
	schema := must(jsonschema.NewCompiler().Compile("testdata/sarif-schema-2.1.0.json"))
	for _, tt := range []struct {
		format string
		want   []string
	}{
		{"text", []string{"FLEET 4 clusters: 3 ready, 0 blocked, 1 could not decide\n", "  could not decide  " + otherProject + "/" + brokenCluster + "\n" +
			"           ? dwsapi: cluster.encrypted (DWS ShowClusterEncryptInfo): HTTP 503 FAKE.0503: injected fault: Service Unavailable; request headers: "}},
		{"json", []string{`"could_not_decide": 1`, `"verdict": "could not decide"`, `"reason": "dwsapi: cluster.encrypted (DWS ShowClusterEncryptInfo): HTTP 503`}},
		{"markdown", []string{"| Clusters | Ready | Blocked | Could not decide |", "| 4 | 3 | 0 | 1 |",
			"| **could not decide** | dwsapi: cluster.encrypted (DWS ShowClusterEncryptInfo): HTTP 503"}},
		{"junit", []string{`<testsuites name="precheck fleet" tests="4" failures="0" errors="1">`,
			`<error message="could not decide: the facts could not be gathered" type="PRECHECK-GATE-001">dwsapi: cluster.encrypted (DWS ShowClusterEncryptInfo): HTTP 503`}},
		{"sarif", []string{`"ruleId": "PRECHECK-GATE-001"`, `"text": "could not decide: dwsapi: cluster.encrypted (DWS ShowClusterEncryptInfo): HTTP 503`, `"could_not_decide": 1`}},
	} {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := precheck(t, "", append(args, "--format", tt.format)...)
			if code != exitAllowed || errOut != "" {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("the report lacks %q:\n%s", want, out)
				}
			}
			noSecrets(t, srv, out)
			if tt.format == "sarif" {
				if err := schema.Validate(must(jsonschema.UnmarshalJSON(strings.NewReader(out)))); err != nil {
					t.Errorf("not SARIF 2.1.0: %v", err)
				}
			}
		})
	}
	t.Run("fail-on-blocked", func(t *testing.T) {
		t.Parallel()
		if code, out, errOut := precheck(t, "", append(args, "--fail-on-blocked")...); code != exitDenied {
			t.Errorf("exit %d, want 1: a cluster that could not be decided is not ready\n%s%s", code, out, errOut)
		}
	})
}

func testFleetFromAPIUsage(t *testing.T) {
	t.Parallel()
	srv, _ := newFleetFake(t, 1)
	srv.FailFor(dwsfake.ListClusters, otherProject, dwsfake.Fault{Status: 500, Echo: true})
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no target", []string{"--from-api", "--region", "cn-north-4"}, exitUsage, "--from-api needs a --target PROJECT@REGION"},
		{"no region", []string{"--from-api", "--target", otherProject}, exitUsage, "--from-api needs --region"},
		{"unknown region", []string{"--from-api", "--target", otherProject + "@mars-north-1"}, exitUsage, `region "mars-north-1" is not in the SDK's DWS region catalogue`},
		{"empty region", []string{"--from-api", "--target", otherProject + "@"}, exitUsage, "want PROJECT@REGION"},
		{"no project", []string{"--from-api", "--target", "@cn-north-4"}, exitUsage, `--from-api needs a project ID in --target "@cn-north-4"`},
		{"twice", []string{"--from-api", "--target", otherProject + "@cn-north-4", "--target", otherProject + "@cn-north-4"}, exitUsage, "is given twice"},
		{"target alone", []string{"--inventory", fleetInventory, "--target", otherProject}, exitUsage, "--target needs --from-api"},
		{"rate alone", []string{"--inventory", fleetInventory, "--rate", "5"}, exitUsage, "--rate needs --from-api"},
		{"negative rate", []string{"--from-api", "--target", otherProject, "--region", "cn-north-4", "--rate", "-1"}, exitUsage, "--rate -1: want"},
		{"listing fails", []string{"--from-api", "--endpoint", srv.URL, "--target", otherProject}, exitPolicy,
			"precheck: could not decide: fleet: listing the clusters of project " + otherProject + " in " + srv.URL +
				": dwsapi: clusters (DWS ListClusters): HTTP 500 FAKE.0500: injected fault: Internal Server Error; request headers: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := precheck(t, "", slices.Concat([]string{"fleet"}, tt.args)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", code, errOut, tt.code, tt.want)
			}
			if tt.code == exitUsage && !strings.HasSuffix(errOut, "; see 'precheck fleet --help'\n") {
				t.Errorf("no hint: %q", errOut)
			}
			noSecretsIn(t, out+errOut)
		})
	}
}

// noSecretsIn fails if text holds the credentials (for runs whose fake received no request to take the
// signatures from).
func noSecretsIn(t *testing.T, text string) {
	t.Helper()
	for _, s := range []string{dwsfake.TestAK, dwsfake.TestSK, fakeSecurityToken, "Signature="} {
		if strings.Contains(text, s) {
			t.Errorf("the output holds a secret (%.6s...):\n%s", s, text)
		}
	}
}

// testFleetCompareFromAPI: --compare-policy with --from-api; the cluster that could not be gathered is
// listed as such, neither blocked nor unblocked.
func testFleetCompareFromAPI(t *testing.T) {
	t.Parallel()
	srv, agents := brokenFleetFake(t)
	code, out, errOut := precheck(t, "", slices.Concat([]string{"fleet", "--from-api", "--inventory", agents, "--engine", "rego", "--format", "json",
		"--compare-policy", bankPolicy}, fleetTargetArgs(srv), fleetAPIArgs)...)
	if code != exitAllowed {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var r impactReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// Under the bank's policy generalCipher is refused to every tenant: every cluster ready now is blocked.
	if r.Summary.Clusters != 4 || r.Summary.Decided != 3 || r.Summary.CouldNotDecide != 1 || len(r.CouldNotDecide) != 1 ||
		r.CouldNotDecide[0].ClusterID != brokenCluster || !strings.Contains(r.CouldNotDecide[0].Reason, "DWS ShowClusterEncryptInfo") || r.Summary.Blocks == 0 {
		t.Errorf("impact %+v", r)
	}
	for _, c := range r.Changes {
		if c.ClusterID == brokenCluster {
			t.Errorf("the cluster that could not be decided is a change: %+v", c)
		}
	}
	noSecrets(t, srv, out+errOut)

	// A change that blocks nothing it could decide still fails --fail-on-new-blocks while a cluster could
	// not be decided: it might be the one the change blocks.
	same := t.TempDir()
	if err := os.WriteFile(filepath.Join(same, "data.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = precheck(t, "", slices.Concat([]string{"fleet", "--from-api", "--inventory", agents, "--engine", "rego",
		"--compare-policy", same, "--fail-on-new-blocks"}, fleetTargetArgs(srv), fleetAPIArgs)...)
	if code != exitDenied || !strings.Contains(out, "blocks no cluster") {
		t.Errorf("no change but a cluster not decided, --fail-on-new-blocks: exit %d, want %d\n%s%s", code, exitDenied, out, errOut)
	}
}
