package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	defaultpolicy "github.com/precheck/precheck/rego"
)

// Query is the decision every policy must define, and Entrypoint its name in a compiled wasm module.
const (
	Query      = "data.precheck.decision"
	Entrypoint = "precheck/decision"
)

// Policy is a loaded policy bundle: the Rego modules (tests kept apart), the data, and the rule catalog
// read from the modules' METADATA. It is immutable once loaded; engines prepare it for evaluation.
type Policy struct {
	source   string
	revision string
	modules  []bundle.ModuleFile // policy modules, sorted by path
	// tests are the *_test.rego files, sorted by path. A check never runs them, so a directory's are read
	// but parsed only when Test or Lint asks (see parsedTests): parsing the default's tests was half the
	// time of reading it.
	tests       []bundle.ModuleFile
	testsParsed func() (*parsedTests, error)
	// ownTestFiles are the tests that Test runs, by relative path: those of the top layer (nil: all). The
	// default's tests assume the default's data, so they do not run under overrides (their helpers stay
	// importable).
	ownTestFiles map[string]bool
	data         map[string]any
	manifest     bundle.Manifest
	catalog      *Catalog
	explainState
	eval evaluation // the modules as the engines evaluate them, made on first use

	contentOnce   sync.Once
	contentDigest string

	// prepared is the rego engine's prepared query, made on first use: preparing compiles the policy, and
	// every rego engine of the policy can share the result (it is safe for concurrent use).
	prepared struct {
		once sync.Once
		pq   rego.PreparedEvalQuery
		err  error
	}
}

// PolicyError is a policy that cannot be used: a file that does not parse or compile, bad METADATA, bad
// data. Each problem names its place (file:line:col, or the data path). It is not the caller's input at
// fault (exit code 3, not 2).
type PolicyError struct {
	Source   string
	Problems []string
}

// NewPolicyError describes an error of OPA's parser or compiler about the policy from source, one problem
// per line with its file:line:col.
func NewPolicyError(source string, err error) *PolicyError {
	return &PolicyError{Source: source, Problems: describeErrors(err)}
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("policy %s: %s", e.Source, strings.Join(e.Problems, "; "))
}

// Default returns the default policy embedded in the binary (the rego/ directory of this repository). It
// is read once per process: a Policy is immutable, so every caller can share it, and with it what engines
// prepare from it once (the rewritten modules, the rego engine's prepared query).
func Default() (*Policy, error) { return defaultPolicy() }

var defaultPolicy = sync.OnceValues(func() (*Policy, error) {
	b, err := defaultBundle()
	if err != nil {
		return nil, err
	}
	return newPolicy("embedded default", b)
})

// defaultBundle is the embedded default as read and parsed, once per process: Default and every
// LoadWithOverrides share it. Nothing changes a bundle's parsed modules once read (a Policy hands out
// copies), so the sharing is safe, and an override costs the parsing of its own files only.
var defaultBundle = sync.OnceValues(func() (*bundle.Bundle, error) {
	return readFS(defaultpolicy.FS, "embedded default")
})

// Load reads a policy from a directory (a bundle tree of .rego and data.json files) or from an OPA bundle
// file (.tar.gz). Module names are relative to the policy's root (decision.rego, rules/bank.rego), so the
// policy, its revision and anything built from it are the same however the path is spelt and wherever it
// lies. A bundle file's signatures are not verified: a local file is as trusted as a directory would be
// (ReadBundle verifies what a bundle service serves).
func Load(p string) (*Policy, error) {
	b, err := readPath(p)
	if err != nil {
		return nil, err
	}
	return newPolicy(p, b)
}

// LoadWithOverrides reads the default policy with a directory or bundle of overrides layered on top: a
// module of the overrides replaces the default's module at the same path (relative to the bundle root) and
// adds to the policy otherwise; the overrides' data is merged into the default's, the overrides' values
// winning (objects merge member by member, anything else is replaced whole). Only the layered result has
// to be a valid policy.
func LoadWithOverrides(p string) (*Policy, error) {
	base, err := defaultBundle()
	if err != nil {
		return nil, err
	}
	over, err := readPath(p)
	if err != nil {
		return nil, err
	}
	pol, err := newPolicy("embedded default + "+p, overlay(base, over))
	if err != nil {
		return nil, err
	}
	pol.ownTestFiles = map[string]bool{}
	for _, m := range over.Modules {
		if isTest(m) {
			pol.ownTestFiles[relativePath(m)] = true
		}
	}
	return pol, nil
}

func isTest(m bundle.ModuleFile) bool { return strings.HasSuffix(m.Path, "_test.rego") }

// ReadBundle reads a policy from an OPA bundle (.tar.gz) as a bundle server serves it. With a verification
// config the bundle must be signed (.signatures.json) by one of its keys, and every file must match its
// signature; an unsigned or tampered bundle is a PolicyError and nothing of it is used.
func ReadBundle(r io.Reader, source string, verify *bundle.VerificationConfig) (*Policy, error) {
	raw, err := readTarball(r)
	if err != nil {
		return nil, &PolicyError{Source: source, Problems: []string{err.Error()}}
	}
	reader := bundle.NewCustomReader(tarballLoader(raw)).
		WithSizeLimitBytes(MaxBundleBytes).
		WithProcessAnnotations(true).
		WithRegoVersion(ast.RegoV1).
		WithBundleVerificationConfig(verify).
		WithSkipBundleVerification(verify == nil)
	b, err := reader.Read()
	if err != nil {
		return nil, NewPolicyError(source, err)
	}
	return newPolicy(source, &b)
}

// readPath reads and parses the bundle at p, a directory tree or a .tar.gz, without judging it as a policy.
// Nothing of p itself goes into the bundle: a directory is read as a file system rooted at it, a file as a
// tarball with no base URL, so module names are relative to the policy root.
func readPath(p string) (*bundle.Bundle, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, &PolicyError{Source: p, Problems: []string{err.Error()}}
	}
	if st.IsDir() {
		return readFS(os.DirFS(p), p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, &PolicyError{Source: p, Problems: []string{err.Error()}}
	}
	defer f.Close()
	raw, err := readTarball(f)
	if err != nil {
		return nil, &PolicyError{Source: p, Problems: []string{err.Error()}}
	}
	return read(tarballLoader(raw), "", p)
}

// MaxBundleBytes bounds a bundle file: its size, and what it holds once decompressed (every file and
// every tar header). OPA's reader holds all of a tarball's files in memory before it checks a signature, and
// allocates what a tar header claims, so without the bound a gzip bomb, or a header of a few bytes that
// claims a terabyte, would exhaust memory before the signature could refuse the bundle.
const MaxBundleBytes = 64 << 20

// readTarball reads a bundle file whole, and refuses it when it, or what it decompresses to, is over
// MaxBundleBytes. A file that is not a gzipped tar is left to OPA's reader, which says what is wrong with it.
func readTarball(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the bundle: %w", err)
	}
	if len(raw) > MaxBundleBytes {
		return nil, fmt.Errorf("the bundle is over the limit of %d bytes", MaxBundleBytes)
	}
	over := fmt.Errorf("the bundle decompresses to more than the limit of %d bytes", MaxBundleBytes)
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return raw, nil
	}
	content := &io.LimitedReader{R: gz, N: MaxBundleBytes + 1}
	tr := tar.NewReader(content)
	var claimed int64
	for {
		h, err := tr.Next()
		if content.N == 0 {
			return nil, over
		}
		if err != nil { // io.EOF, or an archive OPA's reader will refuse in the same place
			return raw, nil
		}
		if claimed += h.Size; h.Size < 0 || claimed > MaxBundleBytes {
			return nil, over
		}
	}
}

// tarballLoader reads a bundle file's files as OPA's bundle reader does, refusing one that claims to be
// over MaxBundleBytes before it allocates anything for it.
func tarballLoader(raw []byte) bundle.DirectoryLoader {
	return bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), "").WithSizeLimitBytes(MaxBundleBytes)
}

// readFS reads a bundle tree from the root of fsys. Its module names are those of the embedded default
// (decision.rego, with no leading slash), so a copy of rego/ on disk reads exactly as the default does.
// The *_test.rego files are read but not parsed: they join the bundle's modules without Parsed (see
// Policy.tests), named as OPA's reader names the others.
func readFS(fsys fs.FS, source string) (*bundle.Bundle, error) {
	var tests []string
	skipTests := func(name string, info fs.FileInfo, _ int) bool {
		if !info.IsDir() && strings.HasSuffix(name, "_test.rego") {
			tests = append(tests, name)
			return true
		}
		return false
	}
	b, err := read(bundle.NewFSLoaderWithRoot(fsys, ".").WithFilter(skipTests), ".", source)
	if err != nil {
		return nil, err
	}
	for _, name := range tests {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, &PolicyError{Source: source, Problems: []string{err.Error()}}
		}
		name = path.Clean(name)
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: name, RelativePath: "/" + name, Raw: raw})
	}
	return b, nil
}

// read reads a bundle through OPA's reader; a baseDir of "." names modules without the leading slash.
func read(files bundle.DirectoryLoader, baseDir, source string) (*bundle.Bundle, error) {
	r := bundle.NewCustomReader(files).
		WithProcessAnnotations(true).
		WithRegoVersion(ast.RegoV1).
		WithSkipBundleVerification(true)
	if baseDir != "" {
		r = r.WithBaseDir(baseDir)
	}
	b, err := r.Read()
	if err != nil {
		return nil, NewPolicyError(source, err)
	}
	return &b, nil
}

// newPolicy checks a bundle and builds the Policy. Nothing is half-applied: any problem fails the whole load.
func newPolicy(source string, b *bundle.Bundle) (*Policy, error) {
	p := &Policy{source: source, data: b.Data, manifest: b.Manifest}
	if p.data == nil {
		p.data = map[string]any{}
	}
	for _, m := range b.Modules {
		switch {
		case isTest(m):
			p.tests = append(p.tests, m)
		case m.Parsed != nil:
			p.modules = append(p.modules, m)
		}
	}
	byPath := func(a, b bundle.ModuleFile) int { return strings.Compare(a.Path, b.Path) }
	slices.SortFunc(p.modules, byPath)
	slices.SortFunc(p.tests, byPath)
	if len(p.modules) == 0 {
		return nil, &PolicyError{Source: source, Problems: []string{"no Rego modules found"}}
	}
	p.testsParsed = sync.OnceValues(func() (*parsedTests, error) { return parseTests(source, b, p.tests, p.ownTestFiles) })
	catalog, problems := buildCatalog(p.modules)
	problems = append(problems, checkData(p.data, catalog)...)
	if len(problems) > 0 {
		return nil, &PolicyError{Source: source, Problems: problems}
	}
	p.catalog = catalog
	p.revision = b.Manifest.Revision
	if p.revision == "" {
		p.revision = p.digest()
	}
	return p, nil
}

// overlay layers the bundle over onto base, as LoadWithOverrides describes.
func overlay(base, over *bundle.Bundle) *bundle.Bundle {
	modules := map[string]bundle.ModuleFile{}
	for _, list := range [][]bundle.ModuleFile{base.Modules, over.Modules} {
		for _, m := range list {
			modules[relativePath(m)] = m
		}
	}
	out := &bundle.Bundle{Data: mergeData(base.Data, over.Data), Manifest: over.Manifest}
	for _, key := range slices.Sorted(maps.Keys(modules)) {
		out.Modules = append(out.Modules, modules[key])
	}
	return out
}

func relativePath(m bundle.ModuleFile) string {
	if m.RelativePath != "" {
		return path.Clean("/" + m.RelativePath)
	}
	return path.Clean("/" + m.Path)
}

func mergeData(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		bo, ok1 := out[k].(map[string]any)
		oo, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = mergeData(bo, oo)
		} else {
			out[k] = v
		}
	}
	return out
}

// digest identifies a policy that carries no manifest revision by its content.
func (p *Policy) digest() string {
	h := sha256.New()
	for _, list := range [][]bundle.ModuleFile{p.modules, p.tests} {
		for _, m := range list {
			fmt.Fprintf(h, "%s\x00%d\x00", relativePath(m), len(m.Raw))
			h.Write(m.Raw)
		}
	}
	data, _ := json.Marshal(p.data) // maps marshal with sorted keys: the digest is stable
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// ContentDigest identifies the policy by its content (modules, tests and data), whatever its manifest's
// revision says: for caches, which must not take two policies that share a revision for one.
func (p *Policy) ContentDigest() string {
	p.contentOnce.Do(func() { p.contentDigest = p.digest() })
	return p.contentDigest
}

// Source says where the policy came from: "embedded default", a path, or layers joined by " + ".
func (p *Policy) Source() string { return p.source }

// Revision identifies the policy: the bundle manifest's revision, or a digest of its content.
func (p *Policy) Revision() string { return p.revision }

// Catalog is the rule catalog, read from the rules' METADATA.
func (p *Policy) Catalog() *Catalog { return p.catalog }

// Data returns the policy's data document. It is shared: do not change it.
func (p *Policy) Data() map[string]any { return p.data }

// Modules returns the policy's Rego modules, without the tests, keyed by file path. They are copies, the
// caller's to change: OPA's compiler and tester rewrite the modules they are given, and a Policy is shared
// (Default's by every caller in the process) by engines evaluating it at the same time.
func (p *Policy) Modules() map[string]*ast.Module { return parsed(p.modules) }

// Tests returns copies of the *_test.rego modules keyed by file path, parsing them the first time: a
// PolicyError names a test file that does not parse.
func (p *Policy) Tests() (map[string]*ast.Module, error) {
	t, err := p.testsParsed()
	if err != nil {
		return nil, err
	}
	return parsed(t.files), nil
}

// parsedTests are a policy's test files, parsed.
type parsedTests struct {
	files []bundle.ModuleFile
	// own are the packages of the tests that Test runs (see Policy.ownTestFiles).
	own []ast.Ref
}

// parseTests parses the test files that reading left unparsed, as OPA's bundle reader parses modules (the
// bundle's Rego version, or the version its manifest gives the file). own names the tests Test runs by
// relative path; nil is all.
func parseTests(source string, b *bundle.Bundle, files []bundle.ModuleFile, own map[string]bool) (*parsedTests, error) {
	out := &parsedTests{own: []ast.Ref{}}
	opts := ast.ParserOptions{ProcessAnnotation: true, RegoVersion: b.RegoVersion(ast.RegoV1)}
	for _, m := range files {
		if m.Parsed == nil {
			fileOpts := opts
			v, err := b.RegoVersionForFile(m.RelativePath, opts.RegoVersion)
			if err != nil {
				return nil, NewPolicyError(source, err)
			}
			fileOpts.RegoVersion = v
			if m.Parsed, err = ast.ParseModuleWithOpts(m.Path, string(m.Raw), fileOpts); err != nil {
				return nil, NewPolicyError(source, err)
			}
		}
		out.files = append(out.files, m)
		if own == nil || own[relativePath(m)] {
			out.own = append(out.own, m.Parsed.Package.Path)
		}
	}
	return out, nil
}

func parsed(files []bundle.ModuleFile) map[string]*ast.Module {
	out := make(map[string]*ast.Module, len(files))
	for _, m := range files {
		out[m.Path] = m.Parsed.Copy()
	}
	return out
}

// Bundle returns the policy as an OPA bundle without its tests, for compilers that take bundles. The
// modules are copies: OPA's compilers rewrite the modules they are given.
func (p *Policy) Bundle() *bundle.Bundle {
	modules := make([]bundle.ModuleFile, len(p.modules))
	for i, m := range p.modules {
		m.Parsed = m.Parsed.Copy()
		modules[i] = m
	}
	return &bundle.Bundle{Manifest: p.manifest, Data: p.data, Modules: modules}
}

// describeErrors turns OPA's errors into one line per problem, each with its file:line:col.
func describeErrors(err error) []string {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		out := make([]string, 0, len(astErrs))
		for _, e := range astErrs {
			out = append(out, describeASTError(e))
		}
		return out
	}
	var astErr *ast.Error
	if errors.As(err, &astErr) {
		return []string{describeASTError(astErr)}
	}
	return []string{err.Error()}
}

func describeASTError(e *ast.Error) string {
	if e.Location == nil {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.Location.File, e.Location.Row, e.Location.Col, e.Code, e.Message)
}
