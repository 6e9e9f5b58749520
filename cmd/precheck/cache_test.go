package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cacheFiles lists the files under dir (none when it does not exist).
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// TestWasmCache: --engine wasm fills the cache the flags name, a later run reads it, a damaged entry is
// rebuilt rather than trusted, and --no-cache neither reads nor writes one. A policy of its own (not the
// process's shared default) makes every run compile or load for real.
func TestWasmCache(t *testing.T) {
	withoutRace.Delegate(t)
	t.Parallel()
	dir := t.TempDir()
	args := []string{"check", "--engine", "wasm", "--policy", "../../examples/policies/regulated-bank",
		"--input", "../../examples/policies/regulated-bank/inputs/sm4-ready.json", "--format", "json"}
	code, want, errOut := precheck(t, "", append(args, "--cache-dir", dir)...)
	if code > exitDenied {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	files := cacheFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("the first run wrote no cache entry")
	}
	if c, got, _ := precheck(t, "", append(args, "--cache-dir", dir)...); c != code || got != want {
		t.Errorf("from the cache: exit %d, want %d; decision\n%s\nwant\n%s", c, code, got, want)
	}
	// Damage every file of the entry: the run must notice, rebuild, and decide as before.
	for _, f := range files {
		if err := os.WriteFile(f, []byte("not what was written"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if c, got, e := precheck(t, "", append(args, "--cache-dir", dir)...); c != code || got != want {
		t.Errorf("from a damaged cache: exit %d, want %d; stderr %s; decision\n%s", c, code, e, got)
	}
	for _, f := range cacheFiles(t, dir) {
		if b, err := os.ReadFile(f); err == nil && string(b) == "not what was written" {
			t.Errorf("%s is still the damaged file: the entry was not rebuilt", f)
		}
	}
	none := filepath.Join(t.TempDir(), "unused")
	if c, got, _ := precheck(t, "", append(args, "--cache-dir", none, "--no-cache")...); c != code || got != want {
		t.Errorf("--no-cache: exit %d, want %d", c, code)
	}
	if files := cacheFiles(t, none); len(files) != 0 {
		t.Errorf("--no-cache wrote %s", strings.Join(files, ", "))
	}
}
