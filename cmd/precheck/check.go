package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["check"] = verb{summary: "decide on one input document (file, stdin, or flags)", run: runCheck}
}

// factFlags are the flags for the common members of the input document. Each sets the member at its path,
// over what --input holds; members no flag or file gives stay unknown, and the policy refuses unknown facts.
var factFlags = []struct {
	name, path, usage string
	boolean           bool
}{
	{"project-id", "request.project_id", "project ID (path parameter)", false},
	{"cluster-id", "request.cluster_id", "cluster ID (path parameter)", false},
	{"algorithm", "request.body.encrypt.crypt_algorithm", "crypt_algorithm: generalCipher or SMcompatible", false},
	{"key-id", "request.body.encrypt.master_key_id", "master_key_id: the KMS key ID", false},
	{"key-name", "request.body.encrypt.master_key_name", "master_key_name: the KMS key name", false},
	{"cluster-version", "cluster.version", "the cluster's version", false},
	{"agent-version", "cluster.guest_agent_version", "the cluster's guestAgent version", false},
	{"status", "cluster.status", "the cluster's status (AVAILABLE, ...)", false},
	{"sub-status", "cluster.sub_status", "the cluster's sub-status (NORMAL, ...)", false},
	{"task-status", "cluster.task_status", "the cluster's running task (empty when idle)", false},
	{"encrypted", "cluster.encrypted", "whether the cluster is already encrypted", true},
	{"dr", "cluster.dr_relationship", "whether the cluster has a disaster-recovery relationship", true},
	{"key-state", "key.key_state", "the KMS key's key_state (2 = enabled)", false},
	{"tenant-class", "tenant.class", "the tenant's compliance class", false},
}

func runCheck(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, "rego")
	input := fs.String("input", "", "the input document: a JSON file, or - for stdin")
	format := fs.String("format", "text", "output: "+formatNames(decisionFormats))
	at := fs.String("at", "", "decide as if it were this RFC 3339 time (to preview a waiver's expiry)")
	explain := fs.Bool("explain", false, "also say, for each finding, the rule (file:line), the members it read and their values, and which rules passed")
	facts := make([]*optional, len(factFlags))
	for i, f := range factFlags {
		facts[i] = &optional{path: f.path, boolean: f.boolean}
		fs.Var(facts[i], f.name, f.usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: precheck check [--input FILE|-] [fact flags] [--policy PATH] [--engine rego|wasm] [--format text|json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(e, usageError(fmt.Sprintf("unexpected argument %q (the input is --input FILE)", fs.Arg(0))))
	}
	out, ok := decisionFormats[*format]
	if !ok {
		return fail(e, usageError(fmt.Sprintf("unknown format %q (want %s)", *format, formatNames(decisionFormats))))
	}
	var opts []policy.Option
	if *at != "" {
		when, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fail(e, usageError("--at: "+err.Error()))
		}
		opts = append(opts, policy.WithClock(func() time.Time { return when }))
	}
	p, err := pf.load()
	if err != nil {
		return fail(e, err)
	}
	eng, err := pf.newEngine(ctx, p, opts...)
	if err != nil {
		return fail(e, err)
	}
	defer eng.Close(ctx)
	doc, err := readInput(e, *input, facts, eng.Limits())
	if err != nil {
		return fail(e, err)
	}
	d, err := eng.CheckDocument(ctx, doc)
	if err != nil {
		return fail(e, err)
	}
	if *explain {
		x, err := p.Explain(doc, d)
		if err != nil {
			return fail(e, err)
		}
		err = out.writeExplained(e.stdout, d, x, e.terminal)
		if err != nil {
			return fail(e, err)
		}
	} else if err := out.writeDecision(e.stdout, d, e.terminal); err != nil {
		return fail(e, err)
	}
	if !d.Allowed {
		return exitDenied
	}
	return exitAllowed
}

// readInput builds the input document from --input and the fact flags.
func readInput(e *env, path string, facts []*optional, limits policy.Limits) (*policy.Document, error) {
	var given []*optional
	for _, f := range facts {
		if f.set {
			given = append(given, f)
		}
	}
	if path == "" && len(given) == 0 {
		return nil, usageError("no input: give --input FILE, --input - for stdin, or fact flags (see precheck check -h)")
	}
	data := []byte("{}")
	if path != "" {
		var err error
		if data, err = readLimited(e, path, limits.MaxBytes); err != nil {
			return nil, err
		}
	}
	doc, err := policy.ReadDocument(data, limits)
	if err != nil || len(given) == 0 {
		return doc, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, &policy.InputError{Msg: err.Error()}
	}
	for _, f := range given {
		setPath(m, strings.Split(f.path, "."), f.value())
	}
	data, err = json.Marshal(m)
	if err != nil {
		return nil, &policy.InputError{Msg: err.Error()}
	}
	return policy.ReadDocument(data, limits)
}

// readLimited reads the file (or stdin for "-"), refusing more than limit bytes without reading them all.
func readLimited(e *env, path string, limit int) ([]byte, error) {
	var r io.Reader = e.stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, &policy.InputError{Msg: err.Error()}
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, &policy.InputError{Msg: fmt.Sprintf("reading %s: %v", name, err)}
	}
	if len(data) > limit {
		return nil, &policy.InputError{Msg: fmt.Sprintf("%s is over the limit of %d bytes", name, limit)}
	}
	return data, nil
}

// setPath sets m[path...] = v, making (or replacing) objects on the way: a flag wins over the file.
func setPath(m map[string]any, path []string, v any) {
	for _, key := range path[:len(path)-1] {
		next, ok := m[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[key] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// optional is a flag that remembers whether it was given, so that an absent flag leaves the member unknown
// rather than setting it to "" or false.
type optional struct {
	path    string
	boolean bool
	set     bool
	raw     string
}

func (o *optional) String() string { return o.raw }

func (o *optional) Set(s string) error {
	if o.boolean {
		if _, err := strconv.ParseBool(s); err != nil {
			return errors.New("want true or false")
		}
	}
	o.set, o.raw = true, s
	return nil
}

func (o *optional) IsBoolFlag() bool { return o.boolean }

func (o *optional) value() any {
	if o.boolean {
		b, _ := strconv.ParseBool(o.raw)
		return b
	}
	return o.raw
}
