package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/format"

	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["fmt"] = verb{summary: "format Rego files with OPA's formatter (--check: list the unformatted, change nothing)", run: runFmt}
}

func runFmt(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck fmt", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	check := fs.Bool("check", false, "list the files that are not formatted and exit 1 if any; change nothing")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: precheck fmt [--check] PATH...   (files or directories of .rego files)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		return fail(e, usageError("name the files or directories to format, e.g. precheck fmt --check rego"))
	}
	files, err := regoFiles(fs.Args())
	if err != nil {
		return fail(e, err)
	}
	var unformatted, problems []string
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			return fail(e, err)
		}
		out, err := format.Source(file, src)
		if err != nil {
			problems = append(problems, policy.NewPolicyError(file, err).Problems...)
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		unformatted = append(unformatted, file)
		if !*check {
			if err := writeFileAtomic(file, out); err != nil {
				return fail(e, err)
			}
		}
	}
	if len(problems) > 0 {
		return fail(e, &policy.PolicyError{Source: strings.Join(fs.Args(), " "), Problems: problems})
	}
	for _, file := range unformatted {
		fmt.Fprintln(e.stdout, file)
	}
	if *check && len(unformatted) > 0 {
		fmt.Fprintf(e.stderr, "precheck: %d file(s) not formatted; run precheck fmt on them\n", len(unformatted))
		return exitDenied
	}
	return exitAllowed
}

// regoFiles lists the .rego files under the paths, in order.
func regoFiles(paths []string) ([]string, error) {
	var files []string
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(path, ".rego") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, usageError(err.Error())
		}
	}
	if len(files) == 0 {
		return nil, usageError(fmt.Sprintf("no .rego files under %s", strings.Join(paths, ", ")))
	}
	return files, nil
}
