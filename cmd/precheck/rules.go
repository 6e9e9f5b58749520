package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

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
	pf.register(fs, "")
	format := fs.String("format", "text", "output: "+formatNames(catalogFormats))
	waivers := fs.Bool("waivers", false, "list the waivers in data instead, with which are stale or expired")
	at := fs.String("at", "", "with --waivers: judge expiry at this RFC 3339 time instead of now")
	staleWithin := fs.Duration("stale-within", 14*24*time.Hour, "with --waivers: a waiver expiring within this is stale")
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
	if *waivers {
		now := time.Now()
		if *at != "" {
			if now, err = time.Parse(time.RFC3339, *at); err != nil {
				return fail(e, usageError("--at: "+err.Error()))
			}
		}
		err = writeWaivers(e, p.Waivers(), now, *staleWithin, *format)
	} else {
		err = out.writeCatalog(e.stdout, p.Catalog())
	}
	if err != nil {
		return fail(e, err)
	}
	return exitAllowed
}

// waiverStatus is a waiver as `rules --waivers` reports it.
type waiverStatus struct {
	policy.Waiver
	Status string `json:"status"`
}

func writeWaivers(e *env, ws []policy.Waiver, now time.Time, soon time.Duration, format string) error {
	list := make([]waiverStatus, len(ws))
	for i, w := range ws {
		list[i] = waiverStatus{Waiver: w, Status: w.Status(now, soon)}
	}
	if format == "json" {
		return writeJSON(e.stdout, list)
	}
	p := &printer{w: e.stdout}
	if len(list) == 0 {
		p.printf("no waivers\n")
	}
	for _, w := range list {
		scope := make([]string, 0, len(w.Scope))
		for _, k := range policy.WaiverScopes {
			if v, ok := w.Scope[k]; ok {
				scope = append(scope, k+"="+v)
			}
		}
		p.printf("[%d] %-8s %s for %s, until %s, owner %s: %s\n", w.Index, w.Status, w.Rule, strings.Join(scope, " "), w.Expires, w.Owner, w.Reason)
	}
	return p.err
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
