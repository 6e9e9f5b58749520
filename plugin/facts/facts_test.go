package facts_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

const (
	project = "89cd04f168b84af6be287f71730fdb4b"
	example = "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	second  = "5e3a1c9d-0b6f-4c1a-9d1e-2f4b6a8c0e12"
)

func TestReadInventoryJSON(t *testing.T) {
	inv, err := facts.ReadInventory("testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := inv.Facts(context.Background(), facts.Request{ProjectID: project, ClusterID: example})
	if err != nil {
		t.Fatal(err)
	}
	if f.Cluster.GuestAgentVersion != "8.3.0.200" || *f.Cluster.TaskStatus != "" || *f.Cluster.Encrypted || f.Key.KeyState != "2" || f.Tenant.Class != "default" {
		t.Errorf("facts %+v %+v %+v", f.Cluster, f.Key, f.Tenant)
	}
	if inv.Entries[0].Encrypt.CryptAlgorithm != "generalCipher" {
		t.Errorf("encrypt %+v", inv.Entries[0].Encrypt)
	}
	if f, _ := inv.Facts(context.Background(), facts.Request{ProjectID: "other", ClusterID: example}); f.Cluster != nil {
		t.Error("a cluster listed under another project was answered")
	}
	if f, _ := inv.Facts(context.Background(), facts.Request{ProjectID: project, ClusterID: "unlisted"}); f.Cluster != nil || f.Key != nil {
		t.Error("an unlisted cluster has facts")
	}
}

func TestReadInventoryCSV(t *testing.T) {
	inv, err := facts.ReadInventory("testdata/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Entries) != 2 {
		t.Fatalf("%d entries", len(inv.Entries))
	}
	a := inv.Entries[0]
	if a.Cluster.TaskStatus == nil || *a.Cluster.TaskStatus != "" || len(a.Cluster.Tags) != 2 || a.Cluster.Tags[1] != (policy.Tag{Key: "compliance", Value: "regulated"}) {
		t.Errorf("first %+v", a.Cluster)
	}
	if a.Tenant.Class != "regulated" || a.Encrypt.CryptAlgorithm != "SMcompatible" || a.Key.KeyState != "2" {
		t.Errorf("first %+v %+v %+v", a.Tenant, a.Encrypt, a.Key)
	}
	b := inv.Entries[1]
	if b.Cluster.Encrypted != nil || b.Cluster.GuestAgentVersion != "" || *b.Cluster.TaskStatus != "SNAPSHOTTING" {
		t.Errorf("second %+v (an empty boolean cell is unknown)", b.Cluster)
	}
	if b.Key != nil || b.Tenant != nil {
		t.Errorf("second: empty key and tenant cells gave %+v %+v", b.Key, b.Tenant)
	}
}

func TestInventoryErrors(t *testing.T) {
	tests := []struct{ name, csv, json, want string }{
		{name: "unknown column", csv: "cluster_id,versoin\nx,8\n", want: `unknown column "versoin"`},
		{name: "bad boolean", csv: "cluster_id,encrypted\nx,yes\n", want: `line 2, column encrypted: "yes" is not true or false`},
		{name: "bad tag", csv: "cluster_id,tags\nx,env\n", want: `tag "env" is not key=value`},
		{name: "ragged row", csv: "cluster_id,version\nx\n", want: "wrong number of fields"},
		{name: "no cluster id", csv: "version\n8\n", want: "line 2: no cluster_id"},
		{name: "duplicate", csv: "cluster_id\nx\nx\n", want: "cluster x is listed twice"},
		{name: "misspelt member", json: `[{"cluster_id": "x", "cluster": {"guest_agent_verison": "8"}}]`, want: `entry 1: json: unknown field "guest_agent_verison"`},
		{name: "wrong type", json: `[{"cluster_id": "x", "cluster": {"encrypted": "no"}}]`, want: "entry 1: json: cannot unmarshal string"},
		{name: "not an array", json: `{"cluster_id": "x"}`, want: "not a JSON array"},
		{name: "not an object", json: `[{"cluster_id": "x"}, 7]`, want: "entry 2: not an object"},
		{name: "invalid UTF-8", json: "[{\"cluster_id\": \"x\xff\"}]", want: "not valid UTF-8"},
		// encoding/json reads the last of two members, and a member whatever its case: two readings.
		{name: "member twice", json: `[{"cluster_id": "x", "cluster": {"encrypted": true, "encrypted": false}}]`, want: "entry 1: line 1, column "},
		{name: "member twice by case", json: "[{\"cluster_id\": \"x\"},\n {\"cluster_id\": \"y\", \"cluster\": {\"guest_agent_version\": \"8.3.0.200\", \"GUEST_AGENT_VERSION\": \"8.3.0.100\"}}]", want: "entry 2: line 2, column "},
		{name: "column twice", csv: "cluster_id,encrypted,encrypted\nx,false,true\n", want: `column "encrypted" is given twice (columns 2 and 3)`},
		{name: "duplicate by case", csv: "cluster_id\nabc\nABC\n", want: "cluster ABC is listed twice (also entry 1, abc)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.csv != "" {
				_, err = facts.ParseCSV(strings.NewReader(tt.csv))
			} else {
				_, err = facts.ParseJSON([]byte(tt.json))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := facts.ReadInventory("testdata/none.json"); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCached(t *testing.T) {
	var calls atomic.Int32
	var failing atomic.Bool
	p := facts.Cached(facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond)
		if failing.Load() {
			return nil, errors.New("api down")
		}
		return &facts.Facts{Tenant: &policy.Tenant{Class: r.ClusterID}}, nil
	}), 200*time.Millisecond)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			f, err := p.Facts(ctx, facts.Request{ClusterID: "a"})
			if err != nil || f.Tenant.Class != "a" {
				t.Errorf("%+v %v", f, err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("20 concurrent requests made %d calls, want 1", n)
	}
	if f, _ := p.Facts(ctx, facts.Request{ClusterID: "b"}); f.Tenant.Class != "b" || calls.Load() != 2 {
		t.Errorf("another cluster: %+v after %d calls", f, calls.Load())
	}
	time.Sleep(250 * time.Millisecond)
	failing.Store(true)
	if _, err := p.Facts(ctx, facts.Request{ClusterID: "a"}); err == nil {
		t.Error("an expired entry was answered instead of asking again")
	}
	if _, err := p.Facts(ctx, facts.Request{ClusterID: "a"}); err == nil || calls.Load() != 4 {
		t.Errorf("errors must not be cached: %v after %d calls", err, calls.Load())
	}
}
