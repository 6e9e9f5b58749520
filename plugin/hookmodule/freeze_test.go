package hookmodule_test

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/plugin/hookmodule"
	"github.com/precheck/precheck/policy"
)

// apiExample returns examples/inputs/allowed-api-example.json with the cluster's tags replaced by tags
// (a JSON value; "" removes the member; "-" removes the cluster).
func apiExample(t *testing.T, tags string) *policy.Document {
	t.Helper()
	data, err := os.ReadFile("../../examples/inputs/allowed-api-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	cluster := doc["cluster"].(map[string]any)
	switch tags {
	case "-":
		delete(doc, "cluster")
	case "":
		delete(cluster, "tags")
	default:
		cluster["tags"] = json.RawMessage(tags)
	}
	data, err = json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return document(t, string(data))
}

// TestFreezeExample runs examples/hooks/freeze, built from source with freezeWindows, through a chain
// next to another hook, and checks the decisions its README documents.
func TestFreezeExample(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Two Modules serve every case: one on the host's clock, one on a clock each case sets before it runs
	// (a Load per case would spend most of the test checking the same module again).
	host := loadBuilt(t, freezeModule, hookmodule.Config{})
	var now atomic.Pointer[time.Time]
	start := time.Now() // what the clocked Module's first instance sees, while it is created
	now.Store(&start)
	clocked := loadBuilt(t, freezeModule, hookmodule.Config{Clock: func() time.Time { return *now.Load() }})
	for _, tc := range []struct {
		name       string
		at         string // RFC 3339; "": the host's clock
		tags       string
		violations []string
		warnings   []string // besides the other hook's
	}{
		{"untagged, windows in the past and far ahead", "", `[{"key": "env", "value": "prod"}]`, nil, nil},
		{"no tags at all", "", `[]`, nil, nil},
		{"no tags member", "", ``, nil, nil},
		{"tagged", "", `[{"key": "env", "value": "prod"}, {"key": "change-freeze", "value": "true"}]`, []string{"FREEZE-TAG-001"}, nil},
		{"tagged TRUE", "", `[{"key": "change-freeze", "value": " TRUE"}]`, []string{"FREEZE-TAG-001"}, nil},
		{"tagged false", "", `[{"key": "change-freeze", "value": "false"}]`, nil, nil},
		{"tags unreadable", "", `"change-freeze=true"`, []string{"FREEZE-TAG-002"}, nil},
		{"cluster unknown", "", `-`, []string{"FREEZE-TAG-002"}, nil},
		{"inside a window", "2036-12-24T18:00:00Z", `[]`, []string{"FREEZE-WINDOW-001"}, nil},
		{"inside a window, tagged", "2020-12-20T00:00:00Z", `[{"key": "change-freeze", "value": "true"}]`, []string{"FREEZE-TAG-001", "FREEZE-WINDOW-001"}, nil},
		{"at the end of a window", "2037-01-05T00:00:00Z", `[]`, nil, nil},
		{"a window starts in 3 days", "2036-12-17T00:00:00Z", `[]`, nil, []string{"FREEZE-WINDOW-002"}},
		{"a window starts in 8 days", "2036-12-12T00:00:00Z", `[]`, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			freeze := host
			if tc.at != "" {
				at, err := time.Parse(time.RFC3339, tc.at)
				if err != nil {
					t.Fatal(err)
				}
				now.Store(&at)
				freeze = clocked
			}
			if freeze.Name() != "freeze" {
				t.Errorf("Name() = %q", freeze.Name())
			}
			chain, err := plugin.NewChain(freeze, allowWithWarning)
			if err != nil {
				t.Fatal(err)
			}
			d, err := chain.CheckDocument(ctx, apiExample(t, tc.tags))
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(d.Violations); !reflect.DeepEqual(got, append([]string{}, tc.violations...)) {
				t.Errorf("violations = %v, want %v (%+v)", got, tc.violations, d.Violations)
			}
			if got, want := codes(d.Warnings), append(tc.warnings, "STATIC-001"); !reflect.DeepEqual(got, want) {
				t.Errorf("warnings = %v, want %v", got, want)
			}
			if d.Allowed != (len(tc.violations) == 0) {
				t.Errorf("allowed = %v", d.Allowed)
			}
			if !d.Allowed && (d.Error.Status != 403 || d.Error.ErrorCode != tc.violations[0]) {
				t.Errorf("error = %+v, want 403 %s", d.Error, tc.violations[0])
			}
			for _, v := range append(d.Violations, d.Warnings...) {
				if v.Field == "" || v.Message == "" || (strings.HasPrefix(v.Code, "FREEZE") && v.Remediation == "") {
					t.Errorf("finding without field, message or remediation: %+v", v)
				}
			}
		})
	}
}

// TestFreezeReadme checks the violation the README shows, word for word.
func TestFreezeReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../examples/hooks/freeze/README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "```json\n")
	end := strings.Index(string(readme)[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README.md shows no violation")
	}
	var want policy.Violation
	if err := json.Unmarshal(readme[start+8:start+8+end], &want); err != nil {
		t.Fatal(err)
	}
	freeze := loadBuilt(t, freezeModule, hookmodule.Config{})
	d, err := freeze.Run(context.Background(), apiExample(t, `[{"key": "change-freeze", "value": "true"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Violations) != 1 || d.Violations[0] != want {
		t.Errorf("violations = %+v\nREADME.md shows %+v", d.Violations, want)
	}
}
