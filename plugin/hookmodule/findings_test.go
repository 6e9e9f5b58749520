package hookmodule

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		want         *policy.Decision
	}{
		{"nothing found", `{}`, &policy.Decision{Allowed: true, Violations: []policy.Violation{}, Warnings: []policy.Violation{}}},
		{"null lists", `{"violations": null, "warnings": null}`, &policy.Decision{Allowed: true, Violations: []policy.Violation{}, Warnings: []policy.Violation{}}},
		{"a warning", `{"warnings": [{"code": "W-1", "field": "cluster", "message": "careful", "severity": "warn"}]}`, &policy.Decision{
			Allowed:    true,
			Violations: []policy.Violation{},
			Warnings:   []policy.Violation{{Code: "W-1", Field: "cluster", Severity: "warn", Message: "careful"}},
		}},
		{"violations, sorted", `{
			"violations": [
				{"code": "B-2", "field": "cluster.tags", "message": "second", "expected": "e", "actual": "a", "remediation": "r"},
				{"code": "A-1", "field": "request", "message": "first"}
			],
			"status": 409}`, &policy.Decision{
			Violations: []policy.Violation{
				{Code: "A-1", Field: "request", Severity: "deny", Message: "first"},
				{Code: "B-2", Field: "cluster.tags", Severity: "deny", Message: "second", Expected: "e", Actual: "a", Remediation: "r"},
			},
			Warnings: []policy.Violation{},
			Error:    &policy.APIError{Status: 409, ErrorCode: "A-1", ErrorMsg: "A-1: first; B-2: second"},
		}},
		{"default status", `{"violations": [{"code": "X", "field": "f", "message": "m"}]}`, &policy.Decision{
			Violations: []policy.Violation{{Code: "X", Field: "f", Severity: "deny", Message: "m"}},
			Warnings:   []policy.Violation{},
			Error:      &policy.APIError{Status: 403, ErrorCode: "X", ErrorMsg: "X: m"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decide([]byte(tc.answer))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decide =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDecideRefuses(t *testing.T) {
	for _, tc := range []struct {
		answer string
		is     error
		says   string
	}{
		{`{not json}`, ErrMalformed, "not a findings object: invalid character"},
		{"{\"warnings\": [{\"code\": \"W\", \"field\": \"f\", \"message\": \"\xff\"}]}", ErrMalformed, "not valid UTF-8"},
		{`[]`, ErrMalformed, "not a findings object"},
		{`null`, ErrMalformed, "the answer must be a JSON object"},
		{` `, ErrMalformed, "the answer must be a JSON object"},
		{`{} {}`, ErrMalformed, "more follows the object"},
		{`{"violation": [{"code": "X", "field": "f", "message": "m"}]}`, ErrMalformed, `the answer has the member "violation", which is not one of violations, warnings, status, error`},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "level": "high"}]}`, ErrMalformed, `violations[0] has the member "level", which is not one of code, field`},
		// encoding/json would keep the last of a member given twice, and take a case variant for the member.
		{`{"violations": [{"code": "X", "field": "f", "message": "m"}], "violations": []}`, ErrMalformed, `the answer has the member "violations" twice`},
		{`{"violations": [{"code": "X", "field": "f", "message": "m"}], "Violations": null}`, ErrMalformed, `the member "Violations", which is not one of`},
		{`{"VIOLATIONS": [{"code": "X", "field": "f", "message": "m"}]}`, ErrMalformed, `the member "VIOLATIONS"`},
		{`{"error": "cannot read the document", "Error": null}`, ErrMalformed, `the member "Error"`},
		{`{"warnings": [{"code": "W", "field": "f", "message": "m", "message": "n"}]}`, ErrMalformed, `warnings[0] has the member "message" twice`},
		{`{"violations": [{"code": "W", "field": "f", "Code": "X", "message": "m"}]}`, ErrMalformed, `violations[0] has the member "Code"`},
		// Texts go to logs, terminals and error messages: one line, read in the order written.
		{`{"error": "x\ntime=2026-01-01 level=INFO allowed=true"}`, ErrMalformed, "error has the control character U+000A at byte 1"},
		{`{"violations": [{"code": "X", "field": "f", "message": "m\r\nallowed=true"}]}`, ErrMalformed, "X: message has the control character U+000D"},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "actual": "\u202egnp.exe"}]}`, ErrMalformed, "X: actual has the control character U+202E"},
		{`{"warnings": [{"code": "X", "field": "f\u001b[31m", "message": "m"}]}`, ErrMalformed, "X: field has the control character U+001B"},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "remediation": "a\u2028b"}]}`, ErrMalformed, "X: remediation has the control character U+2028"},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "expected": "\u0085"}]}`, ErrMalformed, "X: expected has the control character U+0085"},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			d, err := decide([]byte(tc.answer))
			if err == nil {
				t.Fatalf("decide = %+v, want an error", d)
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error = %q (wrapping %v?), want it to say %q", err, tc.is, tc.says)
			}
		})
	}
}

// FuzzDecide feeds decide arbitrary answers: it never panics, and what it accepts is a sound decision.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"error": "x"}`, `{"violations": [{"code": "A", "field": "f", "message": "m"}], "status": 404}`,
		`{"warnings": [{"code": "W", "field": "f", "message": "m", "severity": "warn"}]}`, `null`, `{"status": 499}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		d, err := decide(answer)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoJudgement) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrNoJudgement", err)
			}
			return
		}
		if d.Violations == nil || d.Warnings == nil {
			t.Fatal("nil list")
		}
		if d.Allowed != (len(d.Violations) == 0) || d.Allowed != (d.Error == nil) {
			t.Fatalf("allowed %v with %d violations, error %+v", d.Allowed, len(d.Violations), d.Error)
		}
		if !slices.IsSortedFunc(d.Violations, policy.CompareViolations) || !slices.IsSortedFunc(d.Warnings, policy.CompareViolations) {
			t.Fatal("unsorted")
		}
		for _, v := range d.Violations {
			if v.Severity != policy.SeverityDeny || v.Code == "" || strings.HasPrefix(strings.ToUpper(v.Code), "DWS.") {
				t.Fatalf("violation %+v", v)
			}
		}
		for _, v := range d.Warnings {
			if v.Severity != policy.SeverityWarn || v.Code == "" {
				t.Fatalf("warning %+v", v)
			}
		}
		if d.Error != nil && (d.Error.Status < 400 || d.Error.Status > 499 || d.Error.ErrorCode != d.Violations[0].Code) {
			t.Fatalf("error %+v", d.Error)
		}
	})
}
