package facts_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/facts"
)

// FuzzParseJSON: an inventory ParseJSON accepts is read the same way by plain encoding/json (no member it
// could take either of two ways), and every entry names its cluster.
func FuzzParseJSON(f *testing.F) {
	seed, err := os.ReadFile("testdata/inventory.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		`[]`, `[{"cluster_id": "x"}]`, `[{"cluster_id": "x", "cluster": {"encrypted": true, "Encrypted": false}}]`,
		`[{"cluster_id": "x", "CLUSTER_ID": "y"}]`, `[{"cluster_id": "x", "tenant": {"class": "regulated"}}, {"cluster_id": "X"}]`,
		`[{"cluster_id": "x", "cluster": {"tags": [{"key": "a", "value": "b", "Value": "c"}]}}]`, `[{"cluster_id": "\ud800"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := facts.ParseJSON(data)
		if err != nil {
			return
		}
		var plain []facts.Entry
		if err := json.Unmarshal(data, &plain); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, data)
		}
		if len(plain) != len(inv.Entries) || len(plain) > 0 && !reflect.DeepEqual(plain, inv.Entries) {
			a, _ := json.Marshal(inv.Entries)
			b, _ := json.Marshal(plain)
			t.Fatalf("two readings of %q:\nours  %s\nplain %s", data, a, b)
		}
		for i, e := range inv.Entries {
			if e.ClusterID == "" {
				t.Fatalf("entry %d has no cluster_id: %q", i+1, data)
			}
		}
	})
}

// FuzzParseCSV: an inventory ParseCSV accepts names a cluster in every entry, no cluster twice (up to
// letter case), and finds each entry by its own IDs.
func FuzzParseCSV(f *testing.F) {
	seed, err := os.ReadFile("testdata/inventory.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		"cluster_id\nx\n", "cluster_id,encrypted,encrypted\nx,false,true\n", "cluster_id\nabc\nABC\n",
		"\ufeffcluster_id, tags\nx,\"a=b;c=d\"\n", "project_id,cluster_id,key_id\np,x,\ny,p,k\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := facts.ParseCSV(bytes.NewReader(data))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for i, e := range inv.Entries {
			id := strings.ToLower(e.ClusterID)
			if e.ClusterID == "" || seen[id] {
				t.Fatalf("entry %d: cluster_id %q empty or listed twice: %q", i+1, e.ClusterID, data)
			}
			seen[id] = true
			if got := inv.Entry(e.ProjectID, e.ClusterID); got != &inv.Entries[i] {
				t.Fatalf("entry %d is not found by its own IDs: %q", i+1, data)
			}
		}
	})
}
