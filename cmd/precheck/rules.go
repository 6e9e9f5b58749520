package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["rules"] = verb{summary: "print the rule catalog, generated from the rules' METADATA", run: runRules}
}

// catalogFormat writes the rule catalog; one type per format.
type catalogFormat interface {
	writeCatalog(w io.Writer, c *policy.Catalog) error
}

var catalogFormats = map[string]catalogFormat{
	"text":     catalogText{},
	"markdown": catalogMarkdown{},
	"json":     catalogJSON{},
}

func runRules(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck rules", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, false)
	format := fs.String("format", "text", "output: "+formatNames(catalogFormats))
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	out, ok := catalogFormats[*format]
	if !ok {
		return fail(e, usageError(fmt.Sprintf("unknown format %q (want %s)", *format, formatNames(catalogFormats))))
	}
	p, err := pf.load()
	if err != nil {
		return fail(e, err)
	}
	if err := out.writeCatalog(e.stdout, p.Catalog()); err != nil {
		return fail(e, err)
	}
	return exitAllowed
}

type catalogText struct{}

func (catalogText) writeCatalog(w io.Writer, c *policy.Catalog) error {
	p := &printer{w: w}
	for _, r := range c.Rules {
		p.printf("%-18s %-5s %d  %s\n", r.Code, r.Severity, r.Status, r.Title)
	}
	return p.err
}

type catalogJSON struct{}

func (catalogJSON) writeCatalog(w io.Writer, c *policy.Catalog) error { return writeJSON(w, c) }

// catalogMarkdown is the catalog as it stands in the README. It names each rule's file but not its line,
// so that editing a policy does not make the README stale unless a rule itself changed.
type catalogMarkdown struct{}

func (catalogMarkdown) writeCatalog(w io.Writer, c *policy.Catalog) error {
	p := &printer{w: w}
	p.printf("| Code | Level | Status | Rule | What to do |\n|---|---|---|---|---|\n")
	for _, r := range c.Rules {
		p.printf("| `%s` | %s | %d | **%s**: %s (%s, `%s`) | %s |\n",
			r.Code, r.Severity, r.Status, r.Title, cell(r.Description), r.Concern, r.File, cell(r.Remediation))
	}
	return p.err
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
