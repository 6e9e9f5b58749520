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
		{`{"violation": [{"code": "X", "field": "f", "message": "m"}]}`, ErrMalformed, `unknown field "violation"`},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "level": "high"}]}`, ErrMalformed, `unknown field "level"`},
		{`{"violations": {"code": "X"}}`, ErrMalformed, "cannot unmarshal object"},
		{`{"violations": [{"code": 7, "field": "f", "message": "m"}]}`, ErrMalformed, "cannot unmarshal number"},
		{`{"violations": [{"field": "f", "message": "m"}]}`, ErrMalformed, "violations[0]: code is missing"},
		{`{"violations": [null]}`, ErrMalformed, "violations[0]: code is missing"},
		{`{"warnings": [{"code": "dws.0001", "field": "f", "message": "m"}]}`, ErrMalformed, `warnings[0]: code "dws.0001" is in the cloud API's namespace`},
		{`{"violations": [{"code": "PRECHECK-CLU-001", "field": "f", "message": "m"}]}`, ErrMalformed, "in precheck's namespace"},
		{`{"violations": [{"code": "has space", "field": "f", "message": "m"}]}`, ErrMalformed, `code "has space" is not 1 to 64 bytes`},
		{`{"violations": [{"code": "X", "field": " ", "message": "m"}]}`, ErrMalformed, "X: field is missing"},
		{`{"violations": [{"code": "X", "field": "f"}]}`, ErrMalformed, "X: message is missing"},
		{`{"violations": [{"code": "X", "field": "f", "message": "m", "severity": "warn"}]}`, ErrMalformed, `X: severity "warn" disagrees`},
		{`{"violations": [{"code": "X", "field": "f", "message": "m"}], "status": 503}`, ErrMalformed, "status 503 is not a 4xx status"},
		{`{"status": 403.5}`, ErrMalformed, "cannot unmarshal number 403.5"},
		{`{"error": ""}`, ErrMalformed, `"error" is empty`},
		{`{"error": "no data", "violations": []}`, ErrNoJudgement, "could not judge: no data"},
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
