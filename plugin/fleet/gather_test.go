package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/fleet"
	"github.com/precheck/precheck/policy"
)

const otherProject = "0123456789abcdef0123456789abcdef"

func fromEnvironment(t testing.TB) {
	t.Setenv("HUAWEICLOUD_SDK_AK", dwsfake.TestAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", dwsfake.TestSK)
}

// newFleet starts a fake holding n generated clusters across two projects, a DR pair, and the example key.
func newFleet(t testing.TB, n int) *dwsfake.Server {
	srv := dwsfake.New()
	t.Cleanup(srv.Close)
	for _, c := range dwsfake.GenerateClusters(n, dwsfake.ExampleProjectID, otherProject) {
		srv.PutCluster(c)
	}
	srv.PutKey(dwsfake.ExampleKey())
	srv.PutDisasterRecovery(dwsfake.DisasterRecovery{ProjectID: dwsfake.ExampleProjectID, ID: "dr-1", Status: "running",
		PrimaryClusterID: dwsfake.GeneratedClusterID(0), StandbyClusterID: dwsfake.GeneratedClusterID(2)})
	return srv
}

func targets(srv *dwsfake.Server) []dwsapi.Target {
	return []dwsapi.Target{
		{ProjectID: dwsfake.ExampleProjectID, Endpoint: srv.URL},
		{ProjectID: otherProject, Endpoint: srv.URL},
	}
}

// agentInventory is what an operator keeps beside the API: guestAgent versions and tenant classes.
func agentInventory(t testing.TB, srv *dwsfake.Server) *facts.Inventory {
	var entries []facts.Entry
	for i, c := range srv.Clusters() {
		e := facts.Entry{ProjectID: c.ProjectID, ClusterID: c.ID, Cluster: &policy.Cluster{GuestAgentVersion: agentVersion(i)}}
		if i%5 == 0 {
			e.Tenant = &policy.Tenant{Class: "regulated"}
		}
		entries = append(entries, e)
	}
	return readEntries(t, entries)
}

func agentVersion(i int) string {
	if i%13 == 12 {
		return "8.3.0.100"
	}
	return "8.3.0.200"
}

// renderInventory is the inventory file that says what the fake knows, written by hand from the fake's own
// records (not through dwsapi), with the agent inventory's versions and classes: gathering from the API
// must give exactly its entries.
func renderInventory(t testing.TB, srv *dwsfake.Server, keyID string) *facts.Inventory {
	inDR := map[string]bool{}
	for _, dr := range srv.DisasterRecoveries() {
		inDR[dr.PrimaryClusterID], inDR[dr.StandbyClusterID] = true, true
	}
	var key *policy.Key
	if k, ok := srv.Key(keyID); ok {
		key = &policy.Key{KeyID: k.ID, KeyState: k.State, KeySpec: k.Spec}
	}
	clusters := srv.Clusters()
	slices.SortStableFunc(clusters, func(a, b dwsfake.Cluster) int {
		// Results come by target (the example project first), then cluster ID.
		if (a.ProjectID == dwsfake.ExampleProjectID) != (b.ProjectID == dwsfake.ExampleProjectID) {
			if a.ProjectID == dwsfake.ExampleProjectID {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	index := map[string]int{}
	for i, c := range srv.Clusters() {
		index[c.ID] = i
	}
	var entries []facts.Entry
	for _, c := range clusters {
		i := index[c.ID]
		pc := &policy.Cluster{
			Version: c.Version, GuestAgentVersion: agentVersion(i), Status: c.Status, SubStatus: c.SubStatus,
			TaskStatus: policy.String(c.TaskStatus), ActionProgress: c.ActionProgress,
			Encrypted: policy.Bool(c.Encryption != nil && c.Encryption.MasterKeyID != ""), DRRelationship: policy.Bool(inDR[c.ID]),
			EnterpriseProjectID: c.EnterpriseProjectID,
		}
		for _, tg := range c.Tags {
			pc.Tags = append(pc.Tags, policy.Tag{Key: tg.Key, Value: tg.Value})
		}
		e := facts.Entry{ProjectID: c.ProjectID, ClusterID: c.ID, Cluster: pc, Key: key}
		if i%5 == 0 {
			e.Tenant = &policy.Tenant{Class: "regulated"}
		}
		entries = append(entries, e)
	}
	return readEntries(t, entries)
}

// readEntries writes entries as an inventory file and reads it back, as `precheck fleet --inventory` would.
func readEntries(t testing.TB, entries []facts.Entry) *facts.Inventory {
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := facts.ReadInventory(path)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestGatherThousandClusters is the acceptance test of `fleet --from-api`: 1,000 clusters across two
// projects, throttling on for some calls, a rate limit, one cluster whose calls keep failing.
func TestGatherThousandClusters(t *testing.T) {
	fromEnvironment(t)
	srv := newFleet(t, 1000)
	broken := dwsfake.GeneratedClusterID(7)
	srv.FailFor(dwsfake.ShowClusterEncryptInfo, broken, dwsfake.Fault{Status: 500, ErrorCode: "DWS.9999", ErrorMsg: "internal error"})
	// Every 40th request for a cluster's details or encryption is throttled, and one cluster's is throttled
	// once with a Retry-After of a second.
	srv.Throttle(dwsfake.Throttling{Endpoints: []dwsfake.Endpoint{dwsfake.ListClusterDetails, dwsfake.ShowClusterEncryptInfo}, Every: 40, RetryAfter: 0})
	slow := dwsfake.GeneratedClusterID(11)
	srv.FailFor(dwsfake.ListClusterDetails, slow, dwsfake.Fault{Status: 429, ErrorCode: dwsfake.CodeThrottled, ErrorMsg: "The throttling threshold has been reached",
		Header: map[string][]string{"Retry-After": {"1"}}, Times: 1})
	inv := agentInventory(t, srv)

	const rps, burst = 800, 20
	var listed int
	var done atomic.Int64
	start := time.Now()
	g, err := fleet.Gather(context.Background(), fleet.Config{
		Targets:         targets(srv),
		Encrypt:         policy.Encrypt{CryptAlgorithm: "SMcompatible", MasterKeyID: dwsfake.ExampleKeyID},
		Inventory:       inv,
		InventorySource: "inventory agents.json",
		Concurrency:     16,
		Policy:          dwsapi.CallPolicy{RequestsPerSecond: rps, Burst: burst, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		Listed:          func(n int) { listed = n },
		Done:            func() { done.Add(1) }, // from any goroutine
	})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gathered %d clusters in %v: %+v; the fake throttled %d", len(g.Results), elapsed, g.Stats, srv.Throttled())

	// Every cluster exactly once, in order: the example project's, then the other's, each by cluster ID.
	if len(g.Results) != 1000 || listed != 1000 || done.Load() != 1000 {
		t.Fatalf("%d results, %d listed, %d done; want 1000", len(g.Results), listed, done.Load())
	}
	seen := map[string]bool{}
	for i, r := range g.Results {
		if seen[r.Entry.ClusterID] {
			t.Fatalf("cluster %s twice", r.Entry.ClusterID)
		}
		seen[r.Entry.ClusterID] = true
		if i > 0 && r.Entry.ProjectID == g.Results[i-1].Entry.ProjectID && r.Entry.ClusterID < g.Results[i-1].Entry.ClusterID {
			t.Fatalf("result %d out of order", i)
		}
	}

	// The broken cluster could not be gathered, and says why; all others were.
	failed := g.Failed()
	if len(failed) != 1 || failed[0].Entry.ClusterID != broken || failed[0].Entry.Cluster != nil {
		t.Fatalf("failed: %+v, want only %s", failed, broken)
	}
	var de *dwsapi.Error
	if !errors.As(failed[0].Err, &de) || de.Op != "DWS ShowClusterEncryptInfo" || de.Status() != 500 {
		t.Errorf("reason %v, want DWS ShowClusterEncryptInfo's HTTP 500", failed[0].Err)
	}
	if strings.Contains(failed[0].Err.Error(), dwsfake.TestAK) {
		t.Error("the reason holds the AK")
	}

	// What the API gave, with the agent inventory, is what the equivalent inventory file says.
	want := renderInventory(t, srv, dwsfake.ExampleKeyID).Entries
	want = slices.DeleteFunc(want, func(e facts.Entry) bool { return e.ClusterID == broken })
	if got := g.Entries(); js(got) != js(want) {
		for i := range min(len(got), len(want)) {
			if js(got[i]) != js(want[i]) {
				t.Fatalf("entry %d:\n got %s\nwant %s", i, js(got[i]), js(want[i]))
			}
		}
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	if p := g.Results[0].Provenance; p["cluster.guest_agent_version"] != "inventory agents.json" || p["cluster.version"] != "DWS ListClusterDetails" || p["key.key_state"] != "KMS DescribeKey" {
		t.Errorf("provenance %v", p)
	}

	// Retries: every throttled answer was retried, and the Retry-After of a second was honoured.
	if g.Stats.Throttled != int64(srv.Throttled())+1 || g.Stats.Retries != g.Stats.Throttled || g.Stats.GaveUp != 0 {
		t.Errorf("stats %+v; the fake throttled %d (+1 by FailFor)", g.Stats, srv.Throttled())
	}
	// (The fake's every-Nth throttling may hit the slow cluster too, with no Retry-After: what counts is the
	// call after FailFor's answer.)
	var slowCalls []dwsfake.Request
	reqs := srv.Requests()
	for _, r := range reqs {
		if r.Endpoint == dwsfake.ListClusterDetails && r.Target == slow {
			slowCalls = append(slowCalls, r)
		}
	}
	retried := false
	for i := range len(slowCalls) - 1 {
		if slowCalls[i].Status == 429 && !slowCalls[i].Throttled {
			retried = slowCalls[i+1].Received.Sub(slowCalls[i].Received) >= time.Second
		}
	}
	if !retried {
		var at []string
		for _, r := range slowCalls {
			at = append(at, fmt.Sprintf("%s (%d, throttled %v)", r.Received.Format(time.StampMilli), r.Status, r.Throttled))
		}
		t.Errorf("the throttled cluster's calls at %v: want the retry after the Retry-After answer a second later", at)
	}

	// Project-wide answers are asked once per project: the DR list and the key.
	if n := srv.Hits(dwsfake.ListDisasterRecover); n != 2 {
		t.Errorf("ListDisasterRecover asked %d times, want once per project", n)
	}
	if n := srv.Hits(dwsfake.DescribeKey); n != 2 {
		t.Errorf("DescribeKey asked %d times, want once per project", n)
	}
	if int64(len(reqs)) != g.Stats.Requests {
		t.Errorf("the fake saw %d requests, the transport counted %d", len(reqs), g.Stats.Requests)
	}

	// The rate at the fake: in no second more than the limit plus the burst. (5% over for arrival jitter:
	// the limiter spaces sends, and a loaded machine can bunch their arrival.)
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		times[i] = r.Received
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	worst, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		worst = max(worst, i-j+1)
	}
	if limit := int(float64(rps+burst) * 1.05); worst > limit {
		t.Errorf("%d requests within one second at the fake, over the limit %d/s + burst %d", worst, rps, burst)
	}
	t.Logf("busiest second at the fake: %d requests (limit %d/s, burst %d)", worst, rps, burst)
}

func TestGatherFailsWhenAListFails(t *testing.T) {
	fromEnvironment(t)
	srv := newFleet(t, 10)
	srv.FailFor(dwsfake.ListClusters, otherProject, dwsfake.Fault{Status: 403, ErrorCode: "DWS.0015", ErrorMsg: "denied"})
	_, err := fleet.Gather(context.Background(), fleet.Config{Targets: targets(srv)})
	var de *dwsapi.Error
	if !errors.As(err, &de) || de.Op != "DWS ListClusters" || de.Status() != 403 || !strings.Contains(err.Error(), otherProject) {
		t.Fatalf("error %v, want the other project's ListClusters 403", err)
	}

	srv.HealFor(dwsfake.ListClusters, otherProject)
	srv.SetListLimit(3)
	_, err = fleet.Gather(context.Background(), fleet.Config{Targets: targets(srv)})
	if !errors.Is(err, dwsapi.ErrIncompleteList) {
		t.Fatalf("error %v, want an incomplete list", err)
	}

	if _, err := fleet.Gather(context.Background(), fleet.Config{Targets: append(targets(srv), targets(srv)[0])}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a target given twice: %v", err)
	}
}

func TestGatherSharedFailureAndNotListed(t *testing.T) {
	fromEnvironment(t)
	srv := newFleet(t, 6)
	// The key's details keep failing: every cluster that needs them could not be gathered, each saying why,
	// and KMS was asked once per project, not once per cluster.
	srv.FailFor(dwsfake.DescribeKey, dwsfake.ExampleKeyID, dwsfake.Fault{Status: 503, ErrorCode: "KMS.0001", ErrorMsg: "unavailable"})
	inv := readEntries(t, []facts.Entry{{ClusterID: "99999999-9999-4999-8999-999999999999"}})
	g, err := fleet.Gather(context.Background(), fleet.Config{Targets: targets(srv), Encrypt: policy.Encrypt{MasterKeyID: dwsfake.ExampleKeyID}, Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Results) != 6 || len(g.Failed()) != 6 {
		t.Fatalf("%d results, %d failed; want all 6 failed", len(g.Results), len(g.Failed()))
	}
	for _, r := range g.Results {
		if !strings.Contains(fmt.Sprint(r.Err), "KMS DescribeKey") {
			t.Errorf("%s: %v", r.Entry.ClusterID, r.Err)
		}
	}
	if n := srv.Hits(dwsfake.DescribeKey); n != 2 {
		t.Errorf("DescribeKey asked %d times, want once per project", n)
	}
	if !slices.Equal(g.NotListed, []string{"99999999-9999-4999-8999-999999999999"}) {
		t.Errorf("NotListed %v", g.NotListed)
	}
}

func BenchmarkGatherThousandClusters(b *testing.B) {
	fromEnvironment(b)
	srv := newFleet(b, 1000)
	inv := agentInventory(b, srv)
	cfg := fleet.Config{Targets: targets(srv), Encrypt: policy.Encrypt{MasterKeyID: dwsfake.ExampleKeyID}, Inventory: inv, Concurrency: 16}
	b.ReportAllocs()
	for b.Loop() {
		srv.ResetRecords() // the fake's own records would grow without bound
		g, err := fleet.Gather(context.Background(), cfg)
		if err != nil || len(g.Entries()) != 1000 {
			b.Fatalf("%v, %d entries", err, len(g.Entries()))
		}
	}
}
