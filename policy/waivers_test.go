package policy_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
)

func TestMalformedWaiversFailTheLoad(t *testing.T) {
	t.Parallel()
	good := `{"rule": "PRECHECK-VER-002", "scope": {"cluster_id": "c"}, "reason": "r", "owner": "o", "expires": "2027-01-01"}`
	tests := []struct{ name, waivers, want string }{
		{"not a list", `{}`, "data.precheck.waivers: must be a list"},
		{"unknown code", strings.Replace(good, "PRECHECK-VER-002", "PRECHECK-VER-999", 1), "data.precheck.waivers[0]: rule PRECHECK-VER-999 is not a rule code"},
		{"no expiry", strings.Replace(good, `, "expires": "2027-01-01"`, "", 1), "data.precheck.waivers[0]: has no expires"},
		{"bad date", strings.Replace(good, "2027-01-01", "2027-13-01", 1), `expires "2027-13-01" is not a date`},
		{"time without zone", strings.Replace(good, "2027-01-01", "2027-01-01T00:00:00", 1), "is not a date"},
		{"empty reason", strings.Replace(good, `"reason": "r"`, `"reason": " "`, 1), "reason must be a non-empty string"},
		{"no scope", strings.Replace(good, `"scope": {"cluster_id": "c"}, `, "", 1), "has no scope"},
		{"empty scope", strings.Replace(good, `{"cluster_id": "c"}`, `{}`, 1), "scope must name at least one of"},
		{"unknown scope", strings.Replace(good, `"cluster_id"`, `"region"`, 1), "scope.region: a scope names only"},
		{"unknown member", strings.Replace(good, `"owner"`, `"approver"`, 1), `unknown member "approver"`},
		{"second one bad", good + `, {"rule": 1}`, "data.precheck.waivers[1]: rule must be a non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"data.json": `{"precheck": {"waivers": [` + tt.waivers + `]}}`})
			if tt.name == "not a list" {
				dir = writeFiles(t, map[string]string{"data.json": `{"precheck": {"waivers": {}}}`})
			}
			_, err := policy.LoadWithOverrides(dir)
			var perr *policy.PolicyError
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWaiverStatus(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"data.json": `{"precheck": {"waivers": [
		{"rule": "PRECHECK-VER-002", "scope": {"cluster_id": "a"}, "reason": "r", "owner": "o", "expires": "2027-01-01"},
		{"rule": "PRECHECK-CLU-005", "scope": {"tenant_class": "default"}, "reason": "r", "owner": "o", "expires": "2026-12-01T00:00:00+08:00"}]}}`})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Waivers()
	if len(ws) != 2 || ws[1].Index != 1 || ws[1].Scope["tenant_class"] != "default" {
		t.Fatalf("waivers %+v", ws)
	}
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	soon := 14 * 24 * time.Hour
	for _, tt := range []struct {
		w    policy.Waiver
		now  time.Time
		want string
	}{
		{ws[0], now, "active"},
		{ws[1], now, "stale"},
		{ws[1], time.Date(2026, 11, 30, 15, 59, 59, 0, time.UTC), "stale"},
		{ws[1], time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC), "expired"},
		{ws[0], time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "expired"},
	} {
		if got := tt.w.Status(tt.now, soon); got != tt.want {
			t.Errorf("waiver %d at %s: %s, want %s", tt.w.Index, tt.now, got, tt.want)
		}
	}
}

// TestWaiverAtTheBoundary decides with the engine's clock set either side of a waiver's expiry.
func TestWaiverAtTheBoundary(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"data.json": `{"precheck": {"waivers": [
		{"rule": "PRECHECK-VER-002", "scope": {"cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"}, "reason": "vendor upgrade", "owner": "dba-team", "expires": "2027-01-01T08:00:00+08:00"}]}}`})
	p, err := policy.LoadWithOverrides(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile("../examples/inputs/denied-guest-agent-too-old.json")
	expiry := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) // 08:00 at +08:00
	for _, tt := range []struct {
		now     time.Time
		allowed bool
	}{{expiry.Add(-time.Nanosecond), true}, {expiry, false}, {expiry.Add(time.Hour), false}} {
		e, err := policy.New(context.Background(), p, policy.WithClock(func() time.Time { return tt.now }))
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.CheckJSON(context.Background(), doc)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != tt.allowed {
			t.Errorf("at %s: allowed %v, want %v (%+v)", tt.now, d.Allowed, tt.allowed, d.Violations)
		}
		if !tt.allowed && (len(d.Warnings) < 2 || d.Warnings[1].Code != "PRECHECK-WAIVER-001") {
			t.Errorf("at %s: the expired waiver is not reported: %+v", tt.now, d.Warnings)
		}
	}
}
