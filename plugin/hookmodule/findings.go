package hookmodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/precheck/precheck/policy"
)

// findings is the answer of precheck_hook (see the package documentation).
type findings struct {
	Violations []finding `json:"violations"`
	Warnings   []finding `json:"warnings"`
	Status     *int      `json:"status"`
	Error      *string   `json:"error"`
}

type finding struct {
	Code        string `json:"code"`
	Field       string `json:"field"`
	Severity    string `json:"severity"`
	Message     string `json:"message"`
	Expected    string `json:"expected"`
	Actual      string `json:"actual"`
	Remediation string `json:"remediation"`
}

// DefaultStatus is the status of a hook's refusal when its findings name none.
const DefaultStatus = 403

// decide reads a hook's answer and builds its decision. Errors wrap ErrMalformed, or ErrNoJudgement for
// an answer {"error": ...}.
func decide(answer []byte) (*policy.Decision, error) {
	f, err := parseFindings(answer)
	if err != nil {
		return nil, &failure{"answered malformed findings: " + err.Error(), ErrMalformed}
	}
	if f.Error != nil {
		return nil, &failure{"could not judge: " + *f.Error, ErrNoJudgement}
	}
	d := &policy.Decision{
		Allowed:    len(f.Violations) == 0,
		Violations: convert(f.Violations, policy.SeverityDeny),
		Warnings:   convert(f.Warnings, policy.SeverityWarn),
	}
	if d.Allowed {
		return d, nil
	}
	status := DefaultStatus
	if f.Status != nil {
		status = *f.Status
	}
	msgs := make([]string, len(d.Violations))
	for i, v := range d.Violations {
		msgs[i] = v.Code + ": " + v.Message
	}
	d.Error = &policy.APIError{Status: status, ErrorCode: d.Violations[0].Code, ErrorMsg: strings.Join(msgs, "; ")}
	return d, nil
}

// convert gives the findings of one list their severity, sorted as precheck sorts every list; never nil.
func convert(fs []finding, severity string) []policy.Violation {
	vs := make([]policy.Violation, len(fs))
	for i, f := range fs {
		vs[i] = policy.Violation{
			Code: f.Code, Field: f.Field, Severity: severity, Message: f.Message,
			Expected: f.Expected, Actual: f.Actual, Remediation: f.Remediation,
		}
	}
	slices.SortFunc(vs, policy.CompareViolations)
	return vs
}

// parseFindings decodes and checks an answer strictly: a member the ABI does not define, or a finding
// that is not one, is an error saying which and why.
func parseFindings(answer []byte) (*findings, error) {
	if !utf8.Valid(answer) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	if trimmed := bytes.TrimLeft(answer, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("not a findings object: the answer must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.DisallowUnknownFields()
	var f findings
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a findings object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("not a findings object: more follows the object")
	}
	if f.Error != nil {
		if strings.TrimSpace(*f.Error) == "" {
			return nil, fmt.Errorf(`"error" is empty; say why the hook could not judge`)
		}
		return &f, nil
	}
	if f.Status != nil && (*f.Status < 400 || *f.Status > 499) {
		return nil, fmt.Errorf("status %d is not a 4xx status", *f.Status)
	}
	for _, list := range []struct {
		name     string
		fs       []finding
		severity string
	}{{"violations", f.Violations, policy.SeverityDeny}, {"warnings", f.Warnings, policy.SeverityWarn}} {
		for i, x := range list.fs {
			if err := x.check(list.severity); err != nil {
				return nil, fmt.Errorf("%s[%d]: %v", list.name, i, err)
			}
		}
	}
	return &f, nil
}

func (f *finding) check(severity string) error {
	switch {
	case f.Code == "":
		return fmt.Errorf("code is missing")
	case !validName(f.Code):
		return fmt.Errorf("code %q is not 1 to 64 bytes of A-Z a-z 0-9 . _ -", f.Code)
	case hasPrefixFold(f.Code, "DWS."):
		return fmt.Errorf("code %q is in the cloud API's namespace (DWS.*); a hook's codes are its own", f.Code)
	case hasPrefixFold(f.Code, "PRECHECK-"):
		return fmt.Errorf("code %q is in precheck's namespace (PRECHECK-*); a hook's codes are its own", f.Code)
	case strings.TrimSpace(f.Field) == "":
		return fmt.Errorf("%s: field is missing", f.Code)
	case strings.TrimSpace(f.Message) == "":
		return fmt.Errorf("%s: message is missing", f.Code)
	case f.Severity != "" && f.Severity != severity:
		return fmt.Errorf("%s: severity %q disagrees with the list, whose findings are %q", f.Code, f.Severity, severity)
	}
	return nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
