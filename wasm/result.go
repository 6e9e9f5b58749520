package wasm

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/precheck/precheck/policy"
)

// decodeResult reads the result set the module wrote, [{"result": decision}] (or [] when the decision is
// undefined), into a Decision; nil for []. The module writes the decision in a shape it always has (the
// policy makes it), so a small reader for exactly that shape does the work of encoding/json in a fraction
// of its time; anything else (a member it does not know, a value of another type, an escape it does not
// read itself) is handed to encoding/json, whose reading is the reference.
func decodeResult(out []byte) (*policy.Decision, error) {
	r := newResultReader(out)
	if d, ok := r.resultSet(); ok {
		return d, nil
	}
	var rs []struct {
		Result *policy.Decision `json:"result"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	if rs[0].Result == nil {
		return nil, errors.New("the result is null")
	}
	return rs[0].Result, nil
}

// resultReader is the fast path of decodeResult. Each method returns false as soon as the text is not
// what it expects; the caller then starts over with encoding/json.
type resultReader struct {
	data []byte
	text string // data as one string, which the decision's strings share: one allocation, not one each
	i    int
}

func newResultReader(out []byte) *resultReader {
	return &resultReader{data: out, text: string(out)}
}

func (r *resultReader) resultSet() (*policy.Decision, bool) {
	if !r.byte('[') {
		return nil, false
	}
	if r.byte(']') {
		return nil, r.end()
	}
	if !r.byte('{') || r.key() != "result" {
		return nil, false
	}
	d := &policy.Decision{}
	if !r.decision(d) || !r.byte('}') || !r.byte(']') || !r.end() {
		return nil, false
	}
	return d, true
}

func (r *resultReader) decision(d *policy.Decision) bool {
	var seen members
	ok := r.object(func(key string) bool {
		switch key {
		case "allowed":
			return seen.first(0) && r.boolean(&d.Allowed)
		case "violations":
			return seen.first(1) && r.findings(&d.Violations)
		case "warnings":
			return seen.first(2) && r.findings(&d.Warnings)
		case "error":
			d.Error = &policy.APIError{}
			return seen.first(3) && r.apiError(d.Error)
		}
		return false
	})
	return ok && seen.has(0)
}

func (r *resultReader) findings(out *[]policy.Violation) bool {
	if !r.byte('[') {
		return false
	}
	vs := make([]policy.Violation, 0, 4)
	for first := true; !r.byte(']'); first = false {
		if !first && !r.byte(',') {
			return false
		}
		var v policy.Violation
		if !r.finding(&v) {
			return false
		}
		vs = append(vs, v)
	}
	*out = vs
	return true
}

func (r *resultReader) finding(v *policy.Violation) bool {
	var seen members
	return r.object(func(key string) bool {
		var dst *string
		var i uint
		switch key {
		case "code":
			dst, i = &v.Code, 0
		case "field":
			dst, i = &v.Field, 1
		case "severity":
			dst, i = &v.Severity, 2
		case "message":
			dst, i = &v.Message, 3
		case "expected":
			dst, i = &v.Expected, 4
		case "actual":
			dst, i = &v.Actual, 5
		case "remediation":
			dst, i = &v.Remediation, 6
		default:
			return false
		}
		return seen.first(i) && r.strInto(dst)
	})
}

func (r *resultReader) apiError(e *policy.APIError) bool {
	var seen members
	return r.object(func(key string) bool {
		switch key {
		case "status":
			return seen.first(0) && r.integer(&e.Status)
		case "error_code":
			return seen.first(1) && r.strInto(&e.ErrorCode)
		case "error_msg":
			return seen.first(2) && r.strInto(&e.ErrorMsg)
		}
		return false
	})
}

// object reads a JSON object, calling member with each member's key and the reader at its value; member
// reads the value and says whether the member is sound (a name the caller does not know is not).
func (r *resultReader) object(member func(key string) bool) bool {
	if !r.byte('{') {
		return false
	}
	for first := true; !r.byte('}'); first = false {
		if (!first && !r.byte(',')) || !member(r.key()) {
			return false
		}
	}
	return true
}

// members records which of an object's known members were read: a name twice is refused.
type members uint

// first marks member i read and reports whether it was not before.
func (m *members) first(i uint) bool {
	dup := *m&(1<<i) != 0
	*m |= 1 << i
	return !dup
}

func (m members) has(i uint) bool { return m&(1<<i) != 0 }

// strInto reads a string into dst.
func (r *resultReader) strInto(dst *string) bool {
	s, ok := r.str()
	if ok {
		*dst = s
	}
	return ok
}

func (r *resultReader) space() {
	for r.i < len(r.data) {
		switch r.data[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// byte consumes c (after white space) if it is next.
func (r *resultReader) byte(c byte) bool {
	r.space()
	if r.i < len(r.data) && r.data[r.i] == c {
		r.i++
		return true
	}
	return false
}

func (r *resultReader) end() bool {
	r.space()
	return r.i == len(r.data)
}

// key reads a member name and its colon; "" when there is none (no member is named "" here).
func (r *resultReader) key() string {
	s, ok := r.str()
	if !ok || !r.byte(':') {
		return ""
	}
	return s
}

// str reads a string without escapes (the module escapes only what JSON requires, which the policy's
// strings rarely hold); one with escapes goes to strconv.Unquote, whose escapes are JSON's but for \/ and
// \u surrogate pairs, and so the fast path gives up on those.
func (r *resultReader) str() (string, bool) {
	if !r.byte('"') {
		return "", false
	}
	start := r.i
	escaped := false
	for r.i < len(r.data) {
		switch c := r.data[r.i]; {
		case c == '"':
			raw := r.text[start:r.i]
			r.i++
			if !escaped {
				if !utf8.ValidString(raw) {
					return "", false
				}
				return raw, true
			}
			return unescape([]byte(raw))
		case c == '\\':
			escaped = true
			r.i += 2
		case c < 0x20:
			return "", false
		default:
			r.i++
		}
	}
	return "", false
}

// unescape reads a JSON string's escapes through encoding/json, the reference.
func unescape(raw []byte) (string, bool) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return "", false
	}
	return s, true
}

func (r *resultReader) boolean(b *bool) bool {
	r.space()
	switch {
	case len(r.data)-r.i >= 4 && string(r.data[r.i:r.i+4]) == "true":
		*b, r.i = true, r.i+4
	case len(r.data)-r.i >= 5 && string(r.data[r.i:r.i+5]) == "false":
		*b, r.i = false, r.i+5
	default:
		return false
	}
	return true
}

// integer reads a JSON integer the way encoding/json reads one into an int: digits only (an exponent or
// a fraction is handed to encoding/json).
func (r *resultReader) integer(n *int) bool {
	r.space()
	start := r.i
	if r.i < len(r.data) && r.data[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.data) && r.data[r.i] >= '0' && r.data[r.i] <= '9' {
		r.i++
	}
	if r.i-digits > 1 && r.data[digits] == '0' { // JSON has no leading zeros
		return false
	}
	if r.i < len(r.data) && (r.data[r.i] == '.' || r.data[r.i] == 'e' || r.data[r.i] == 'E') {
		return false
	}
	v, err := strconv.Atoi(string(r.data[start:r.i]))
	if err != nil {
		return false
	}
	*n = v
	return true
}
