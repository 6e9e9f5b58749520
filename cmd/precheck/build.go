package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/precheck/precheck/wasm"
)

func newBuildCmd(e *env) *cobra.Command {
	var (
		pf                                 policyFlags
		out, bundlePath                    string
		signingKey, signingAlg, signingKID string
	)
	cmd := &cobra.Command{
		Use:   "build [POLICY] [-o precheck.wasm] [--bundle bundle.tar.gz]",
		Short: "Compile the policy to precheck.wasm (and an OPA bundle with --bundle)",
		Long: `Compile the policy to an OPA WebAssembly module (precheck.wasm, entrypoint precheck/decision)
and, with --bundle, write an OPA bundle (.manifest, data.json, /policy.wasm and the Rego sources) that any
OPA WebAssembly host can load, and that --policy accepts too. --signing-key signs the bundle as
opa build --signing-key does.

The policy is the embedded default, or POLICY (or --policy), a directory or bundle layered over it. The
output depends on the policy alone; files are written 0644 less the umask, replacing the old ones
atomically.

Exit codes: 0 written, 2 bad usage or an output that cannot be written, 3 a policy that does not compile.`,
		Example: `  precheck build -o precheck.wasm
  precheck build examples/policies/regulated-bank -o bank.wasm --bundle bank.tar.gz
  precheck build --bundle bundle.tar.gz --signing-key key.pem`,
		Args: pf.positional,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signing, err := signingFlags(cmd, bundlePath, signingKey, signingAlg, signingKID)
			if err != nil {
				return err
			}
			p, err := pf.load()
			if err != nil {
				return err
			}
			// The outputs are created before the compiler runs (seconds, for a large policy): one that
			// cannot be written fails at once, and neither replaces an old file unless both are written.
			modOut, err := createOutput(out)
			if err != nil {
				return err
			}
			defer modOut.discard()
			var bundleOut *output
			if bundlePath != "" {
				if bundleOut, err = createOutput(bundlePath); err != nil {
					return err
				}
				defer bundleOut.discard()
			}
			m, err := wasm.Compile(cmd.Context(), p)
			if err != nil {
				return err
			}
			if err := modOut.write(m.Wasm()); err != nil {
				return err
			}
			if bundleOut != nil {
				var buf bytes.Buffer
				if signing != nil {
					err = m.WriteSignedBundle(&buf, *signing)
				} else {
					err = m.WriteBundle(&buf)
				}
				if err != nil {
					return err
				}
				if err := bundleOut.write(buf.Bytes()); err != nil {
					return err
				}
			}
			if err := modOut.commit(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s (%d bytes, revision %s, entrypoint precheck/decision)\n", out, len(m.Wasm()), p.Revision())
			if bundleOut == nil {
				return nil
			}
			if err := bundleOut.commit(); err != nil {
				return err
			}
			if signing != nil {
				fmt.Fprintf(e.stdout, "wrote %s (signed %s, key id %q)\n", bundlePath, signingAlg, signingKID)
			} else {
				fmt.Fprintf(e.stdout, "wrote %s\n", bundlePath)
			}
			return nil
		},
	}
	pf.register(cmd, "")
	cmd.Flags().StringVarP(&out, "output", "o", "precheck.wasm", "where to write the compiled module")
	cmd.Flags().StringVar(&bundlePath, "bundle", "", "also write an OPA bundle (.tar.gz: .manifest, data.json, /policy.wasm) here")
	cmd.Flags().StringVar(&signingKey, "signing-key", "", "sign the --bundle as OPA does with this key: a PEM private key file "+
		"(RSA or ECDSA), or a file holding the secret for HS256/384/512")
	cmd.Flags().StringVar(&signingAlg, "signing-alg", "RS256", "the signing algorithm (as serve's --bundle-key-alg)")
	cmd.Flags().StringVar(&signingKID, "signing-key-id", wasm.DefaultKeyID, "the key id to sign under (as serve's --bundle-key-id)")
	return cmd
}

// signingFlags checks the signing flags before anything is compiled: nil when the bundle is not to be
// signed, an error for a key that cannot sign (unreadable, not PEM, not fit for the algorithm).
func signingFlags(cmd *cobra.Command, bundlePath, key, alg, keyID string) (*wasm.Signing, error) {
	if key == "" {
		for _, name := range []string{"signing-alg", "signing-key-id"} {
			if cmd.Flags().Changed(name) {
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
// so that a failed write never leaves half a file where a working one was. The file is created 0644 and
// the umask applies, as for any file a build tool writes. Errors name path, never the temporary file, and
// are the command line's (exit 2): the output it names cannot be written.
func writeFileAtomic(path string, data []byte) error {
	o, err := createOutput(path)
	if err != nil {
		return err
	}
	defer o.discard()
	if err := o.write(data); err != nil {
		return err
	}
	return o.commit()
}

// output is a file being replaced as writeFileAtomic does it, in steps: created (its temporary file),
// written, then committed (renamed into place) or discarded.
type output struct {
	path string
	tmp  *os.File
	done bool
}

func createOutput(path string) (*output, error) {
	f, err := createTemp(path)
	if err != nil {
		return nil, writeError(path, err)
	}
	return &output{path: path, tmp: f}, nil
}

// write writes data to the temporary file and closes it.
func (o *output) write(data []byte) error {
	_, err := o.tmp.Write(data)
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return writeError(o.path, err)
	}
	return nil
}

// commit renames the written file into place.
func (o *output) commit() error {
	if err := os.Rename(o.tmp.Name(), o.path); err != nil {
		return writeError(o.path, err)
	}
	o.done = true
	return nil
}

// discard removes the temporary file unless it was committed.
func (o *output) discard() {
	if !o.done {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
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
	return usageError(fmt.Sprintf("cannot write %s: %v", path, err))
}
