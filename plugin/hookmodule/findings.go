package hookmodule

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/precheck/precheck/plugin/redact"
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
	// encoding/json keeps the last of a member given twice and matches names whatever their case: the
	// names are checked first, so that {"violations": [...], "Violations": []} cannot mean "none".
	if err := exactMembers(answer); err != nil {
		return nil, fmt.Errorf("not a findings object: %v", err)
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
		if err := printable("error", *f.Error); err != nil {
			return nil, err
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
	for _, text := range []struct{ name, s string }{
		{"field", f.Field}, {"message", f.Message}, {"expected", f.Expected}, {"actual", f.Actual}, {"remediation", f.Remediation},
	} {
		if err := printable(text.name, text.s); err != nil {
			return fmt.Errorf("%s: %v", f.Code, err)
		}
	}
	return nil
}

// printable refuses a text that would not read as one line of what it says wherever it is shown (a log
// line, a terminal, an error message): one with a redact.Control character.
func printable(name, s string) error {
	for i, r := range s {
		if redact.Control(r) {
			return fmt.Errorf("%s has the control character %U at byte %d", name, r, i)
		}
	}
	return nil
}

// The member names of a findings object, and of a finding.
var (
	answerMembers  = []string{"violations", "warnings", "status", "error"}
	findingMembers = []string{"code", "field", "severity", "message", "expected", "actual", "remediation"}
)

// exactMembers checks that every object of an answer (valid JSON) names each member once, and that the
// answer's and its findings' members are spelt exactly as the ABI spells them.
func exactMembers(answer []byte) error {
	dec := json.NewDecoder(bytes.NewReader(answer))
	var walk func(known []string, where string) error
	walk = func(known []string, where string) error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(known, fmt.Sprintf("%s[%d]", where, i)); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return err
				}
				name, object := t.(string), cmp.Or(where, "the answer")
				switch {
				case seen[name]:
					return fmt.Errorf("%s has the member %q twice", object, name)
				case known != nil && !slices.Contains(known, name):
					return fmt.Errorf("%s has the member %q, which is not one of %s", object, name, strings.Join(known, ", "))
				}
				seen[name] = true
				var inner []string // the objects in a list of findings are findings
				if where == "" && (name == "violations" || name == "warnings") {
					inner = findingMembers
				}
				if err := walk(inner, strings.TrimPrefix(where+"."+name, ".")); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk(answerMembers, "")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
