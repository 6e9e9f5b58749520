package plugin_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin"
	"github.com/precheck/precheck/policy"
)

// stub is a hook with a fixed answer.
type stub struct {
	name string
	d    *policy.Decision
	err  error
}

func (s stub) Name() string { return s.name }
func (s stub) Run(context.Context, *policy.Document) (*policy.Decision, error) {
	return s.d, s.err
}

func deny(code string, status int) *policy.Decision {
	return &policy.Decision{
		Violations: []policy.Violation{{Code: code, Field: "f", Severity: "deny", Message: code + " says no"}},
		Warnings:   []policy.Violation{},
		Error:      &policy.APIError{Status: status, ErrorCode: code, ErrorMsg: code + " says no"},
	}
}

func allow(warn string) *policy.Decision {
	d := &policy.Decision{Allowed: true, Violations: []policy.Violation{}, Warnings: []policy.Violation{}}
	if warn != "" {
		d.Warnings = append(d.Warnings, policy.Violation{Code: warn, Field: "f", Severity: "warn", Message: "careful"})
	}
	return d
}

func TestChainMerges(t *testing.T) {
	doc, _ := policy.ReadDocument([]byte(`{}`), policy.DefaultLimits)
	tests := []struct {
		name      string
		hooks     []plugin.Hook
		allowed   bool
		status    int
		code, msg string
		warnings  int
	}{
		{"all allow", []plugin.Hook{stub{"a", allow("W-1"), nil}, stub{"b", allow("W-2"), nil}}, true, 0, "", "", 2},
		{"one denies", []plugin.Hook{stub{"a", allow(""), nil}, stub{"b", deny("B-1", 409), nil}}, false, 409, "B-1", "B-1: B-1 says no", 0},
		{"first refusal gives the status", []plugin.Hook{stub{"a", deny("Z-1", 403), nil}, stub{"b", deny("A-1", 409), nil}}, false, 403, "Z-1", "A-1: A-1 says no; Z-1: Z-1 says no", 0},
		{"a failing hook denies by name", []plugin.Hook{stub{"a", allow(""), nil}, stub{"freeze", nil, errors.New("wasm trap")}}, false, 503, plugin.CodeHookFailed, "PRECHECK-HOOK-001: hook freeze failed: wasm trap", 0},
		{"a refusal without violations denies by name", []plugin.Hook{stub{"a", allow("W-1"), nil}, stub{"mute", &policy.Decision{Violations: []policy.Violation{}, Warnings: []policy.Violation{}}, nil}},
			false, 503, plugin.CodeHookFailed, "PRECHECK-HOOK-001: hook mute failed: it refused without a violation saying why", 1},
		{"no decision and no error denies by name", []plugin.Hook{stub{"void", nil, nil}, stub{"b", allow(""), nil}},
			false, 503, plugin.CodeHookFailed, "PRECHECK-HOOK-001: hook void failed: it answered no decision", 0},
		{"a refusal without an error still refuses", []plugin.Hook{stub{"a", &policy.Decision{Violations: []policy.Violation{{Code: "A-1", Field: "f", Severity: "deny", Message: "no"}}}, nil}},
			false, 403, "A-1", "A-1: no", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := plugin.NewChain(tt.hooks...)
			if err != nil {
				t.Fatal(err)
			}
			d, err := chain.CheckDocument(context.Background(), doc)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tt.allowed || len(d.Warnings) != tt.warnings {
				t.Fatalf("decision %+v", d)
			}
			if !tt.allowed && (d.Error.Status != tt.status || d.Error.ErrorCode != tt.code || d.Error.ErrorMsg != tt.msg) {
				t.Errorf("error %+v, want %d %s %q", d.Error, tt.status, tt.code, tt.msg)
			}
			if tt.allowed && d.Error != nil {
				t.Errorf("allowed with error %+v", d.Error)
			}
		})
	}
}

func TestPolicyHookInAChain(t *testing.T) {
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("../examples/inputs/denied-guest-agent-too-old.json")
	doc, err := policy.ReadDocument(data, policy.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := plugin.NewChain(plugin.PolicyHook("policy", e), stub{"extra", deny("EXTRA-1", 403), nil})
	if err != nil {
		t.Fatal(err)
	}
	d, err := chain.CheckDocument(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Error.Status != 409 || d.Error.ErrorCode != "PRECHECK-VER-002" || !strings.Contains(d.Error.ErrorMsg, "EXTRA-1") {
		t.Errorf("decision %+v, error %+v", d, d.Error)
	}
	if len(d.Violations) != 2 || d.Violations[0].Code != "EXTRA-1" {
		t.Errorf("violations %+v", d.Violations)
	}
}

func TestNewChainRefusesToJudgeNothing(t *testing.T) {
	if c, err := plugin.NewChain(); !errors.Is(err, plugin.ErrEmptyChain) || c != nil {
		t.Errorf("NewChain() = %v, %v; want ErrEmptyChain", c, err)
	}
	if c, err := plugin.NewChain(stub{"a", allow(""), nil}, nil); err == nil || c != nil {
		t.Errorf("NewChain with a nil hook = %v, %v; want an error", c, err)
	}
}
