package policytest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// MachineCodeDir is where tests keep wazero's machine code across test binaries and runs: compiling a policy
// module takes seconds under the race detector, and most runs compile the same modules as the last. It is
// in the user's cache directory, under the version of wazero that go.mod requires: a test binary carries no
// build information of its dependencies, so wazero files its entries under "dev" whatever its version, and
// the directory's name is what keeps one version's code from another. Within it, wazero names each entry by
// the SHA-256 of the module and how it was compiled (interruptible or not) and writes it whole, so a changed
// module never reads another's code and test binaries may share the directory. Entries not written for a week
// are removed. "" without a user cache directory or the go command.
var MachineCodeDir = sync.OnceValue(func() string {
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	out, err := GoCommand("list", "-m", "-f", "{{.Version}}", "github.com/tetratelabs/wazero").Output()
	version := strings.TrimSpace(string(out))
	if err != nil || version == "" || strings.ContainsAny(version, `/\`) {
		return ""
	}
	// Earlier tests kept the hook modules' machine code apart; it is here now.
	os.RemoveAll(filepath.Join(base, "precheck-test", "hookmodule-wazero"))
	dir := filepath.Join(base, "precheck-test", "wazero-"+version)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	weekAgo := time.Now().Add(-7 * 24 * time.Hour)
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil && info.ModTime().Before(weekAgo) {
				os.Remove(path)
			}
		}
		return nil
	})
	return dir
})

// MachineCode is a compilation cache in MachineCodeDir, one per test binary, for the engines its tests load
// (in memory when there is no such directory).
var MachineCode = sync.OnceValue(func() wazero.CompilationCache {
	if dir := MachineCodeDir(); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			return c
		}
	}
	return wazero.NewCompilationCache()
})
