package main

import (
	"fmt"
	"io"

	"github.com/precheck/precheck/policy"
)

// textFormat writes the decision for a person reading it at a glance: the verdict first, then each
// violation with the field at fault, actual against expected, and what to do; warnings after.
type textFormat struct{}

func (textFormat) writeDecision(w io.Writer, d *policy.Decision, terminal bool) error {
	p := &printer{w: w, color: terminal}
	if d.Allowed {
		p.line(green, "ALLOWED", fmt.Sprintf(" the call may be made (%s)", count(len(d.Warnings), "warning")))
	} else {
		p.line(red, "DENIED", fmt.Sprintf(" %s; the call must not be made", count(len(d.Violations), "violation")))
	}
	for _, v := range d.Violations {
		p.violation(red, "x", v)
	}
	for _, v := range d.Warnings {
		p.violation(yellow, "!", v)
	}
	if d.Error != nil {
		p.printf("\na gate answers %d %s instead of making the call\n", d.Error.Status, d.Error.ErrorCode)
	}
	return p.err
}

func (f textFormat) writeExplained(w io.Writer, d *policy.Decision, x *policy.Explanation, terminal bool) error {
	if err := f.writeDecision(w, d, terminal); err != nil {
		return err
	}
	p := &printer{w: w, color: terminal}
	p.printf("\n%s\n", p.paint(bold, "why"))
	for _, f := range x.Findings {
		mark := "x"
		if f.Violation.Severity == policy.SeverityWarn {
			mark = "!"
		}
		where := "not a rule of the policy (a hook's finding)"
		if f.Rule.Code != "" {
			where = fmt.Sprintf("rule %q at %s:%d", f.Rule.Title, f.Rule.File, f.Rule.Line)
		}
		p.printf("\n%s %s  %s\n", mark, f.Violation.Code, where)
		if len(f.Reads) == 0 && f.Rule.Code != "" {
			p.printf("    read nothing: it applies to every call\n")
		}
		for _, r := range f.Reads {
			if r.Missing {
				p.printf("    read %s: missing\n", r.Path)
			} else {
				p.printf("    read %s = %s\n", r.Path, r.Value)
			}
		}
	}
	p.printf("\nchecked and passed (%d):\n", len(x.Passed))
	for _, r := range x.Passed {
		p.printf("  %-19s %s (%s:%d)\n", r.Code, r.Title, r.File, r.Line)
	}
	return p.err
}

const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

// printer writes text, coloured on a terminal, and keeps the first write error.
type printer struct {
	w     io.Writer
	color bool
	err   error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) paint(color, s string) string {
	if !p.color {
		return s
	}
	return color + s + reset
}

func (p *printer) line(color, head, rest string) {
	p.printf("%s%s\n", p.paint(bold+color, head), rest)
}

func (p *printer) violation(color, mark string, v policy.Violation) {
	p.printf("\n%s %s  %s\n", p.paint(color, mark), p.paint(bold, v.Code), v.Field)
	p.printf("    %s\n", v.Message)
	switch {
	case v.Expected != "" && v.Actual != "":
		p.printf("    expected %s, actual %s\n", v.Expected, v.Actual)
	case v.Expected != "":
		p.printf("    expected %s\n", v.Expected)
	}
	if v.Remediation != "" {
		p.printf("    fix: %s\n", v.Remediation)
	}
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
