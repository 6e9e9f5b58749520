package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

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
	signingKey := fs.String("signing-key", "", "sign the --bundle as OPA does with this key: a PEM private key file "+
		"(RSA or ECDSA), or a file holding the secret for HS256/384/512")
	signingAlg := fs.String("signing-alg", "RS256", "the signing algorithm (as serve's --bundle-key-alg)")
	signingKeyID := fs.String("signing-key-id", wasm.DefaultKeyID, "the key id to sign under (as serve's --bundle-key-id)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(e, usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0))))
	}
	signing, err := signingFlags(fs, *bundlePath, *signingKey, *signingAlg, *signingKeyID)
	if err != nil {
		return fail(e, err)
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
		if signing != nil {
			err = m.WriteSignedBundle(&buf, *signing)
		} else {
			err = m.WriteBundle(&buf)
		}
		if err != nil {
			return fail(e, err)
		}
		if err := writeFileAtomic(*bundlePath, buf.Bytes()); err != nil {
			return fail(e, err)
		}
		if signing != nil {
			fmt.Fprintf(e.stdout, "wrote %s (signed %s, key id %q)\n", *bundlePath, *signingAlg, *signingKeyID)
		} else {
			fmt.Fprintf(e.stdout, "wrote %s\n", *bundlePath)
		}
	}
	return exitAllowed
}

// signingFlags checks the signing flags before anything is compiled: nil when the bundle is not to be
// signed, an error for a key that cannot sign (unreadable, not PEM, not fit for the algorithm).
func signingFlags(flags *flag.FlagSet, bundlePath, key, alg, keyID string) (*wasm.Signing, error) {
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if key == "" {
		for _, name := range []string{"signing-alg", "signing-key-id"} {
			if set[name] {
				return nil, usageError(fmt.Sprintf("--%s needs --signing-key", name))
			}
		}
		return nil, nil
	}
	if bundlePath == "" {
		return nil, usageError("--signing-key needs --bundle: only the bundle is signed")
	}
	pem, err := os.ReadFile(key)
	if err != nil {
		return nil, usageError("--signing-key: " + err.Error())
	}
	s := &wasm.Signing{Key: pem, Algorithm: alg, KeyID: keyID}
	if err := s.Check(); err != nil {
		return nil, usageError(fmt.Sprintf("--signing-key %s: %v", key, err))
	}
	return s, nil
}

// writeFileAtomic writes data to path through a temporary file in the same directory, renamed over path,
// so that a failed build never leaves half a module where a working one was. The file is created 0644 and
// the umask applies, as for any file a build tool writes. Errors name path, never the temporary file.
func writeFileAtomic(path string, data []byte) error {
	f, err := createTemp(path)
	if err != nil {
		return writeError(path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return writeError(path, err)
	}
	return nil
}

// createTemp is os.CreateTemp with mode 0644 rather than 0600 (a chmod after CreateTemp would ignore the
// umask).
func createTemp(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	for {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp")
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}

// writeError says that path could not be written, with the cause but not the temporary file's name.
func writeError(path string, err error) error {
	var pathErr *fs.PathError
	var linkErr *os.LinkError
	switch {
	case errors.As(err, &pathErr):
		err = pathErr.Err
	case errors.As(err, &linkErr):
		err = linkErr.Err
	}
	return fmt.Errorf("cannot write %s: %w", path, err)
}
