package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/dwsfake"
)

// TestRun runs the example against a fake DWS that speaks the API's real shapes.
func TestRun(t *testing.T) {
	srv := dwsfake.New()
	defer srv.Close()
	srv.SeedExample()
	inventory := filepath.Join(t.TempDir(), "inventory.json")
	s := settings{
		endpoint: srv.URL, ak: dwsfake.TestAK, sk: dwsfake.TestSK, projectID: dwsfake.ExampleProjectID,
		inventory: inventory, clusterID: dwsfake.ExampleClusterID, keyID: dwsfake.ExampleKeyID, algorithm: "SMcompatible",
	}
	for _, tt := range []struct{ agent, want string }{
		{"8.3.0.200", "conversion submitted: job " + dwsfake.ExampleJobID},
		{"8.3.0.199", "not converted: 409 PRECHECK-VER-002: PRECHECK-VER-002: guestAgent version 8.3.0.199 is below the required 8.3.0.200"},
	} {
		os.WriteFile(inventory, []byte(`[{"cluster_id": "`+dwsfake.ExampleClusterID+`", "cluster": {"guest_agent_version": "`+tt.agent+`"}}]`), 0o644)
		var out bytes.Buffer
		if err := run(context.Background(), &out, s); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(out.String()); got != tt.want {
			t.Errorf("agent %s: %q, want %q", tt.agent, got, tt.want)
		}
	}
	if n := srv.Hits(dwsfake.EncryptCluster); n != 1 {
		t.Errorf("%d calls reached the server, want the one allowed", n)
	}
}

// TestStart: without its settings the example says which to set and exits 2, never a stack trace or a
// credential; without its argument it prints its usage.
func TestStart(t *testing.T) {
	env := map[string]string{"DWS_ENDPOINT": "https://dws.example", "HUAWEICLOUD_SDK_AK": "AKEXAMPLEAKEXAMPLE00"}
	var out, errOut bytes.Buffer
	code := start(context.Background(), []string{"inventory.json"}, func(k string) string { return env[k] }, &out, &errOut)
	want := "gate: set HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_PROJECT_ID: the DWS endpoint and the credentials the SDK signs its calls with\n"
	if code != 2 || errOut.String() != want || out.Len() > 0 {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := start(context.Background(), nil, func(string) string { return "" }, &out, &errOut); code != 2 || !strings.HasPrefix(errOut.String(), "usage: gate") {
		t.Errorf("no argument: exit %d, stderr %q", code, errOut.String())
	}
}
