package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/precheck/precheck/wasm"
)

func init() {
	verbs["build"] = verb{summary: "compile the policy to precheck.wasm (and an OPA bundle with --bundle)", run: runBuild}
}

func runBuild(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck build", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, "")
	out := fs.String("o", "precheck.wasm", "where to write the compiled module")
	bundlePath := fs.String("bundle", "", "also write an OPA bundle (.tar.gz: .manifest, data.json, /policy.wasm) here")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(e, usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0))))
	}
	p, err := pf.load()
	if err != nil {
		return fail(e, err)
	}
	m, err := wasm.Compile(ctx, p)
	if err != nil {
		return fail(e, err)
	}
	if err := writeFileAtomic(*out, m.Wasm()); err != nil {
		return fail(e, err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes, revision %s, entrypoint precheck/decision)\n", *out, len(m.Wasm()), p.Revision())
	if *bundlePath != "" {
		var buf bytes.Buffer
		if err := m.WriteBundle(&buf); err != nil {
			return fail(e, err)
		}
		if err := writeFileAtomic(*bundlePath, buf.Bytes()); err != nil {
			return fail(e, err)
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", *bundlePath)
	}
	return exitAllowed
}

// writeFileAtomic writes data to path through a temporary file, so that a failed build never leaves half a
// module where a working one was.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".precheck-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}
