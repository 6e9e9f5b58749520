package main

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// shippedCapabilities is the capabilities file in the repository, for OPA's tools and Regal.
const shippedCapabilities = "../../rego/capabilities.json"

// TestCapabilitiesFileIsCurrent fails when rego/capabilities.json is not what `precheck capabilities`
// prints: after an OPA upgrade, or a change to a dws.* builtin's declaration.
func TestCapabilitiesFileIsCurrent(t *testing.T) {
	code, out, errOut := precheck(t, "", "capabilities")
	if code != exitAllowed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	shipped, err := os.ReadFile(shippedCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, []byte(out)) {
		t.Fatalf("rego/capabilities.json is stale (from line %d); regenerate it with:\n\n\tgo run ./cmd/precheck capabilities -o rego/capabilities.json",
			firstDifferentLine(string(shipped), out))
	}
}

func firstDifferentLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

func TestCapabilitiesOutputFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "capabilities.json")
	code, out, errOut := precheck(t, "", "capabilities", "-o", path)
	if code != exitAllowed || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	_, stdout, _ := precheck(t, "", "capabilities")
	written, err := os.ReadFile(path)
	if err != nil || string(written) != stdout {
		t.Fatalf("-o wrote other bytes than stdout gets (%v)", err)
	}
	// 0644 as the umask leaves it: compare with a file written so.
	ref := filepath.Join(dir, "ref")
	os.WriteFile(ref, nil, 0o644)
	got, _ := os.Stat(path)
	want, _ := os.Stat(ref)
	if got.Mode().Perm() != want.Mode().Perm() {
		t.Errorf("mode %v, want %v", got.Mode().Perm(), want.Mode().Perm())
	}

	if code, _, errOut := precheck(t, "", "capabilities", "extra"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("an argument: exit %d, %s", code, errOut)
	}
	if code, _, _ := precheck(t, "", "capabilities", "-o", filepath.Join(dir, "missing", "c.json")); code != exitUsage {
		t.Errorf("an unwritable -o: exit %d", code)
	}
}

// loadShippedCapabilities reads rego/capabilities.json as `opa check --capabilities` does.
func loadShippedCapabilities(t *testing.T) *ast.Capabilities {
	t.Helper()
	c, err := ast.LoadCapabilitiesFile(shippedCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withoutDWS is c as stock OPA knows it: without precheck's builtins.
func withoutDWS(c *ast.Capabilities) *ast.Capabilities {
	out := *c
	out.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool { return strings.HasPrefix(b.Name, "dws.") })
	return &out
}

// opaCheck is `opa check --strict --capabilities FILE paths...` (OPA's cmd/check.go, not in bundle mode):
// load every .rego file under the paths (nothing else), tests included, and compile them all with the
// strict compiler. It returns the files it checked.
func opaCheck(c *ast.Capabilities, paths ...string) ([]string, error) {
	onlyRego := func(_ string, info fs.FileInfo, _ int) bool {
		return !info.IsDir() && filepath.Ext(info.Name()) != bundle.RegoExt
	}
	result, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		WithCapabilities(c).
		Filtered(paths, onlyRego)
	if err != nil {
		return nil, err
	}
	modules := result.ParsedModules()
	return slices.Sorted(maps.Keys(modules)), strictCompile(c, modules, nil)
}

// strictCompile compiles modules as `opa check --strict` does; with a bundle's data (`--bundle`), a rule
// defined where the data has a value is an error too.
func strictCompile(c *ast.Capabilities, modules map[string]*ast.Module, data map[string]any) error {
	compiler := ast.NewCompiler().
		WithCapabilities(c).
		WithEnablePrintStatements(true).
		WithStrict(true).
		WithUseTypeCheckAnnotations(true)
	if len(data) > 0 {
		compiler = compiler.WithPathConflictsCheck(dataAt(data))
	}
	if compiler.Compile(modules); compiler.Failed() {
		return compiler.Errors
	}
	return nil
}

// dataAt reports whether data has a value at a path, or a non-object value on the way to it (OPA's
// cmd/check.go mapFinder).
func dataAt(data map[string]any) func(path []string) (bool, error) {
	return func(path []string) (bool, error) {
		if len(path) == 0 {
			return false, nil
		}
		node := data
		for _, key := range path {
			v, ok := node[key]
			if !ok {
				return false, nil
			}
			if node, ok = v.(map[string]any); !ok {
				return true, nil
			}
		}
		return true, nil
	}
}

// TestCapabilitiesOPACheck holds the README's promise that stock OPA's `opa check --strict --capabilities
// rego/capabilities.json` accepts the default policy, the regulated-bank override layered on it, and the
// bundle `precheck build --bundle` writes; and that without the dws.* declarations it does not.
func TestCapabilitiesOPACheck(t *testing.T) {
	withoutRace.Delegate(t)
	c := loadShippedCapabilities(t)
	for _, tc := range []struct {
		name  string
		paths []string
		files []string // among the files checked
	}{
		{"rego", []string{"../../rego"}, []string{"rego/decision.rego", "rego/versions_test.rego"}},
		{"regulated-bank over rego", []string{"../../rego", "../../examples/policies"},
			[]string{"rego/versions.rego", "regulated-bank/bank.rego", "regulated-bank/bank_test.rego"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := opaCheck(c, tc.paths...)
			if err != nil {
				t.Fatalf("opa check --strict --capabilities rego/capabilities.json %s:\n%v", strings.Join(tc.paths, " "), err)
			}
			for _, want := range tc.files {
				if !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, want) }) {
					t.Errorf("%s not checked; checked %v", want, files)
				}
			}
			_, err = opaCheck(withoutDWS(c), tc.paths...)
			if err == nil || !strings.Contains(err.Error(), "undefined function dws.version_compare") {
				t.Fatalf("without the dws.* declarations: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		policy []string
	}{
		{"bundle", nil},
		{"regulated-bank bundle", []string{"--policy", "../../examples/policies/regulated-bank"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bundle.tar.gz")
			args := append([]string{"build", "-o", filepath.Join(dir, "precheck.wasm"), "--bundle", path}, tc.policy...)
			if code, _, errOut := precheck(t, "", args...); code != exitAllowed {
				t.Fatalf("build: exit %d: %s", code, errOut)
			}
			// opa check --strict --capabilities rego/capabilities.json --bundle bundle.tar.gz
			modules, data := readBundle(t, path, c)
			if err := strictCompile(c, modules, data); err != nil {
				t.Fatalf("the built bundle: %v", err)
			}
			stock := withoutDWS(c)
			modules, data = readBundle(t, path, stock)
			if err := strictCompile(stock, modules, data); err == nil ||
				!strings.Contains(err.Error(), "undefined function dws.version_compare") {
				t.Fatalf("the built bundle without the dws.* declarations: %v", err)
			}
		})
	}
}

// readBundle reads a bundle file with OPA's bundle reader and returns its parsed Rego modules and its data.
func readBundle(t *testing.T, path string, c *ast.Capabilities) (map[string]*ast.Module, map[string]any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := bundle.NewReader(f).WithRegoVersion(ast.RegoV1).WithProcessAnnotations(true).WithCapabilities(c).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Modules) == 0 || len(b.WasmModules) != 1 {
		t.Fatalf("bundle has %d Rego modules and %d wasm modules", len(b.Modules), len(b.WasmModules))
	}
	if len(b.Data) == 0 {
		t.Fatal("bundle has no data")
	}
	return b.ParsedModules(""), b.Data
}
