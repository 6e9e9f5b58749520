package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/precheck/precheck/policy"
)

// fleetJUnit writes the report as JUnit XML, so that a CI system shows each cluster as a test case: one test
// suite, one test case per cluster, a failure for a blocked cluster with its reasons, and the warnings as
// the case's output.
type fleetJUnit struct{}

type junitTestSuites struct {
	XMLName  xml.Name         `xml:"testsuites"`
	Name     string           `xml:"name,attr"`
	Tests    int              `xml:"tests,attr"`
	Failures int              `xml:"failures,attr"`
	Errors   int              `xml:"errors,attr"`
	Suites   []junitTestSuite `xml:"testsuite"`
}

type junitTestSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitTestCase `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func (fleetJUnit) writeFleet(w io.Writer, r *fleetReport, _ bool) error {
	suite := junitTestSuite{
		Name:      "precheck fleet",
		Tests:     r.Summary.Total,
		Failures:  r.Summary.Blocked,
		Errors:    r.Summary.CouldNotDecide,
		Timestamp: r.At,
		Properties: []junitProperty{
			{Name: "policy", Value: r.Policy},
			{Name: "at", Value: r.At},
		},
		Cases: make([]junitTestCase, len(r.Clusters)),
	}
	for i := range r.Clusters {
		c := &r.Clusters[i]
		tc := junitTestCase{Name: c.name(), Classname: "precheck.fleet"}
		if c.Verdict == verdictBlocked {
			codes := make([]string, len(c.Violations))
			for j, v := range c.Violations {
				codes[j] = v.Code
			}
			tc.Failure = &junitFailure{
				Message: "blocked by " + strings.Join(codes, ", "),
				Type:    c.Violations[0].Code,
				Text:    junitFindings(c.Violations),
			}
		}
		if c.Verdict == verdictUndecided {
			// Not a failure: the cluster was not judged at all, as a test that could not run is an error.
			tc.Error = &junitFailure{Message: verdictUndecided + ": " + titleUndecided, Type: codeUndecided, Text: c.Reason + "\n"}
		}
		if len(c.Warnings) > 0 {
			tc.SystemOut = "warnings:\n" + junitFindings(c.Warnings)
		}
		suite.Cases[i] = tc
	}
	doc := junitTestSuites{
		Name:     "precheck fleet",
		Tests:    suite.Tests,
		Failures: suite.Failures,
		Errors:   suite.Errors,
		Suites:   []junitTestSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// junitFindings lists findings as a person reads them in a CI log: code and field, message, expected and
// actual, and the fix.
func junitFindings(vs []policy.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "%s %s: %s\n", v.Code, v.Field, v.Message)
		switch {
		case v.Expected != "" && v.Actual != "":
			fmt.Fprintf(&b, "  expected %s, actual %s\n", v.Expected, v.Actual)
		case v.Expected != "":
			fmt.Fprintf(&b, "  expected %s\n", v.Expected)
		case v.Actual != "":
			fmt.Fprintf(&b, "  actual %s\n", v.Actual)
		}
		if v.Remediation != "" {
			fmt.Fprintf(&b, "  fix: %s\n", v.Remediation)
		}
	}
	return b.String()
}
