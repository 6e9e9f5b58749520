package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"

	"github.com/precheck/precheck/policy"
)

// Cache keeps what compiling a policy costs across processes, in a directory: the module OPA's compiler
// makes of the policy (tens of milliseconds) and the machine code wazero makes of the module (more). A
// process that finds its policy's entry skips both. Use it with Config.Cache:
//
//	cache, err := wasm.OpenCache(filepath.Join(userCacheDir, "precheck"))
//	backend := wasm.Backend(wasm.Config{Cache: cache})
//
// An entry is keyed by the policy (its revision and a digest of its content) and by the build of precheck
// that wrote it (its version and those of OPA and wazero; for a development build, the executable's size
// and time too), so a new build or a changed policy never reads an old entry. Processes may share the
// directory: an entry is written under a temporary name and renamed into place whole, so a reader sees a
// complete entry or none, and when two processes fill the same entry at once one of them wins. Nothing read
// back is trusted: the module carries a header and a SHA-256 checksum, wazero's files are checked against
// the SHA-256 list written with them, and an entry that fails a check is removed and built again.
type Cache struct {
	dir   string
	build string
}

// cacheFormat is the layout of an entry; a change to it (or to what the engine compiles, such as the
// load-time rewrites of package policy) bumps it, so that no build reads an entry of another layout.
const cacheFormat = "precheck-wasm-cache-2"

// OpenCache opens the cache in dir, creating the directory (mode 0700: the entries are executable code)
// if needed. The command line passes os.UserCacheDir()/precheck.
func OpenCache(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("wasm: no cache directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm: cache directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: cache directory: %w", err)
	}
	return &Cache{dir: abs, build: buildIdentity()}, nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// buildIdentity says which build of precheck this is: what an entry it writes depends on.
func buildIdentity() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s %s", cacheFormat, runtime.GOOS, runtime.GOARCH, runtime.Version())
	info, ok := debug.ReadBuildInfo()
	if ok {
		fmt.Fprintf(&b, " %s@%s", info.Main.Path, info.Main.Version)
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				fmt.Fprintf(&b, " %s=%s", s.Key, s.Value)
			}
		}
		for _, d := range info.Deps {
			if strings.Contains(d.Path, "open-policy-agent/opa") || strings.Contains(d.Path, "tetratelabs/wazero") {
				fmt.Fprintf(&b, " %s@%s", d.Path, d.Version)
			}
		}
	}
	// A development build ("(devel)", no VCS stamp) says nothing about its code: the executable itself
	// tells one build from the next.
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		if exe, err := os.Executable(); err == nil {
			if st, err := os.Stat(exe); err == nil {
				fmt.Fprintf(&b, " exe=%d@%d", st.Size(), st.ModTime().UnixNano())
			}
		}
	}
	return b.String()
}

// key names the entry of policy p.
func (c *Cache) key(p *policy.Policy) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", c.build, p.Revision(), p.ContentDigest())
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// The files of an entry.
const (
	moduleFile   = "module.wasm"
	manifestFile = "wazero.sha256"
	wazeroDir    = "wazero"
	moduleMagic  = "PRECHECK-WASM\x00"
)

// module returns the policy's compiled module and a compilation cache for its machine code: from the
// entry when it is sound, else compiled now and written as a new entry (see commit) once the caller has
// loaded it, which is when wazero has written its part.
func (c *Cache) module(ctx context.Context, p *policy.Policy) (wasm []byte, machineCode wazero.CompilationCache, commit func(), err error) {
	key := c.key(p)
	final := filepath.Join(c.dir, "precheck-"+key)
	if wasm, err := c.read(final, key); err == nil {
		if mc, err := wazero.NewCompilationCacheWithDir(filepath.Join(final, wazeroDir)); err == nil {
			return wasm, mc, func() {}, nil
		}
	} else if _, statErr := os.Stat(final); !errors.Is(err, fs.ErrNotExist) || statErr == nil {
		// Corrupt, truncated, incomplete (an entry is renamed into place whole, so a directory without its
		// module is broken too) or of another build: never trusted, removed, built again.
		_ = os.RemoveAll(final)
	}
	cacheFills.Add(1)
	m, err := compileForEngine(ctx, p)
	if err != nil {
		return nil, nil, nil, err
	}
	tmp, err := os.MkdirTemp(c.dir, ".fill-")
	if err != nil {
		return m.wasm, wazero.NewCompilationCache(), func() {}, nil // a cache that cannot be written is no cache
	}
	mc, err := wazero.NewCompilationCacheWithDir(filepath.Join(tmp, wazeroDir))
	if err != nil {
		_ = os.RemoveAll(tmp)
		return m.wasm, wazero.NewCompilationCache(), func() {}, nil
	}
	commit = func() {
		if err := c.write(tmp, key, m.wasm); err != nil || os.Rename(tmp, final) != nil {
			// Another process filled the entry first (the rename finds it there), or the disk refused:
			// either way this one is not needed.
			_ = os.RemoveAll(tmp)
		}
	}
	return m.wasm, mc, commit, nil
}

// read returns the module of the entry in dir after checking the entry whole: the module's header, key
// and checksum, and every file of wazero's against the manifest (a file the manifest does not list is a
// fault too). fs.ErrNotExist when there is no entry.
func (c *Cache) read(dir, key string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, moduleFile))
	if err != nil {
		return nil, err
	}
	wasm, err := decodeModuleFile(data, key)
	if err != nil {
		return nil, err
	}
	manifest, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil { // %v: a missing manifest is a broken entry, not a missing one
		return nil, fmt.Errorf("wasm cache: %v", err)
	}
	want := map[string]string{}
	for line := range strings.Lines(string(manifest)) {
		sum, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "  ")
		if !ok {
			return nil, errors.New("wasm cache: malformed manifest")
		}
		want[name] = sum
	}
	got, err := hashTree(filepath.Join(dir, wazeroDir))
	if err != nil {
		return nil, fmt.Errorf("wasm cache: %v", err)
	}
	if len(got) != len(want) || len(want) == 0 {
		return nil, fmt.Errorf("wasm cache: %d machine-code files, the manifest lists %d", len(got), len(want))
	}
	for name, sum := range got {
		if want[name] != sum {
			return nil, fmt.Errorf("wasm cache: %s does not match its checksum", name)
		}
	}
	return wasm, nil
}

// write completes the entry in dir: the module file, and the manifest of the files wazero wrote.
func (c *Cache) write(dir, key string, wasm []byte) error {
	if err := writeFileSync(filepath.Join(dir, moduleFile), encodeModuleFile(wasm, key)); err != nil {
		return err
	}
	sums, err := hashTree(filepath.Join(dir, wazeroDir))
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(&b, "%s  %s\n", sums[name], name)
	}
	return writeFileSync(filepath.Join(dir, manifestFile), []byte(b.String()))
}

func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hashTree returns the SHA-256 of every regular file under root, by slash path relative to it; wazero's
// own temporary files (a fill in progress in this directory) count as files, so they fail the check.
func hashTree(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("wasm cache: %s is not a regular file", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	return out, err
}

// The module file: magic, the entry's key, the SHA-256 of the module, its length, the module.
func encodeModuleFile(wasm []byte, key string) []byte {
	sum := sha256.Sum256(wasm)
	out := make([]byte, 0, len(moduleMagic)+len(key)+1+len(sum)+8+len(wasm))
	out = append(out, moduleMagic...)
	out = append(append(out, key...), 0)
	out = append(out, sum[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(wasm)))
	return append(out, wasm...)
}

func decodeModuleFile(data []byte, key string) ([]byte, error) {
	bad := func(what string) error { return fmt.Errorf("wasm cache: the module file %s", what) }
	rest, ok := bytes.CutPrefix(data, []byte(moduleMagic))
	if !ok {
		return nil, bad("has no header")
	}
	if rest, ok = bytes.CutPrefix(rest, append([]byte(key), 0)); !ok {
		return nil, bad("is of another entry")
	}
	if len(rest) < sha256.Size+8 {
		return nil, bad("is truncated")
	}
	sum, n, wasm := rest[:sha256.Size], binary.BigEndian.Uint64(rest[sha256.Size:]), rest[sha256.Size+8:]
	if uint64(len(wasm)) != n {
		return nil, bad("is truncated")
	}
	if got := sha256.Sum256(wasm); !bytes.Equal(got[:], sum) {
		return nil, bad("does not match its checksum")
	}
	return wasm, nil
}

// compileForEngine compiles the policy as the engine evaluates it (policy.EvaluationBundle): a module for
// this process (and its cache) only, which holds with the policy's own data.
//
// OPA's compiler is the slow part of preparing a policy, so the process keeps the last few modules it
// compiled, by the policy's content: engines and reloads of the same policy share one compilation.
func compileForEngine(ctx context.Context, p *policy.Policy) (*Module, error) {
	key := p.Revision() + "\x00" + p.ContentDigest()
	recent.Lock()
	for i, e := range recent.entries {
		if e.key == key {
			recent.entries = append(append(recent.entries[:i:i], recent.entries[i+1:]...), e) // most recent last
			recent.Unlock()
			return e.module, nil
		}
	}
	recent.Unlock()
	engineCompilations.Add(1)
	m, err := compileBundle(ctx, p, p.EvaluationBundle())
	if err != nil {
		return nil, err
	}
	recent.Lock()
	recent.entries = append(recent.entries, recentModule{key, m})
	if len(recent.entries) > recentModules {
		recent.entries = recent.entries[1:]
	}
	recent.Unlock()
	return m, nil
}

// recentModules is how many compiled modules the process keeps (a few hundred KiB each).
const recentModules = 4

var recent struct {
	sync.Mutex
	entries []recentModule
}

type recentModule struct {
	key    string
	module *Module
}

// engineCompilations counts the modules compileForEngine compiled, and cacheFills the times a Cache found
// no sound entry and made one: for the cache's tests.
var engineCompilations, cacheFills atomic.Int64
