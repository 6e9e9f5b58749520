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
