package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"time"

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
// complete entry or none, and when two processes fill the same entry at once one of them wins. A committed
// entry is never written again (see machineCode). Nothing read back is trusted: the module carries a header
// and a SHA-256 checksum, wazero's files are checked against the SHA-256 list written with them, and an
// entry that fails a check is removed and built again.
//
// Those checks catch damage, not forgery: anyone can compute an entry's key and its checksums, and wazero's
// machine code is native code this process runs. What keeps an entry honest is that nobody else can write
// it: on unix, the directory, every entry and every file of one must be this user's, not writable by group
// or others, and not a symbolic link (OpenCache refuses such a directory; read refuses such an entry, which
// is then built again). Elsewhere only the portable part is checked (see cache_other.go).
type Cache struct {
	dir   string
	build string
}

// cacheFormat is the layout of an entry; a change to it (or to what the engine compiles, such as the
// load-time rewrites of package policy) bumps it, so that no build reads an entry of another layout.
const cacheFormat = "precheck-wasm-cache-2"

// OpenCache opens the cache in dir, creating the directory (mode 0700: the entries are executable code)
// if needed. The command line passes os.UserCacheDir()/precheck.
//
// A directory that is there already must be private to this user (see Cache): one that is a symbolic link,
// not a directory, another user's or writable by group or others is refused, not repaired, since whoever
// could write it may have planted entries in it already.
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
	// MkdirAll follows a symbolic link and leaves an existing directory as it is: Lstat sees what is there.
	info, err := os.Lstat(abs)
	if err == nil {
		err = checkPrivate(abs, info, true)
	}
	if err != nil {
		return nil, fmt.Errorf("wasm: cache directory refused: %w", err) // err names the directory
	}
	removeStale(abs)
	return &Cache{dir: abs, build: buildIdentity()}, nil
}

// staleAfter is the age of a temporary directory of the cache (a fill, a load's copy) that is no longer in
// use: a load takes a second or so.
const staleAfter = time.Hour

// removeStale removes the temporary directories that loads which failed left behind (the backend completes
// a fill, or releases a load's copy, only when the load succeeded).
func removeStale(dir string) {
	list, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range list {
		if !strings.HasPrefix(e.Name(), fillPrefix) && !strings.HasPrefix(e.Name(), loadPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
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

	// The temporary directories beside the entries: a fill in progress, a load's copy of an entry's
	// machine code.
	fillPrefix = ".fill-"
	loadPrefix = ".load-"
)

// module returns the policy's compiled module and a compilation cache for its machine code: from the
// entry when it is sound, else compiled now and written as a new entry once the caller has loaded it,
// which is when wazero has written its part. The caller calls done once it is through with machineCode:
// done(true) after a load that succeeded completes a new entry, done(false) drops what the load made. What
// a process that died between the two leaves behind, removeStale removes.
func (c *Cache) module(ctx context.Context, p *policy.Policy) (wasm []byte, machineCode wazero.CompilationCache, done func(loaded bool), err error) {
	key := c.key(p)
	final := filepath.Join(c.dir, "precheck-"+key)
	if wasm, err := c.read(final, key); err == nil {
		mc, release := c.machineCode(final)
		return wasm, mc, func(bool) { release() }, nil
	} else if _, statErr := os.Lstat(final); !errors.Is(err, fs.ErrNotExist) || statErr == nil {
		// Corrupt, truncated, incomplete (an entry is renamed into place whole, so a directory without its
		// module is broken too), of another build or not private: never trusted, removed, built again.
		_ = os.RemoveAll(final)
	}
	cacheFills.Add(1)
	m, err := compileForEngine(ctx, p)
	if err != nil {
		return nil, nil, nil, err
	}
	none := func(bool) {}
	tmp, err := os.MkdirTemp(c.dir, fillPrefix)
	if err != nil {
		return m.wasm, wazero.NewCompilationCache(), none, nil // a cache that cannot be written is no cache
	}
	mc, err := wazero.NewCompilationCacheWithDir(filepath.Join(tmp, wazeroDir))
	if err != nil {
		_ = os.RemoveAll(tmp)
		return m.wasm, wazero.NewCompilationCache(), none, nil
	}
	done = func(loaded bool) {
		if !loaded || c.write(tmp, key, m.wasm) != nil || os.Rename(tmp, final) != nil {
			// The load failed, another process filled the entry first (the rename finds it there), or
			// the disk refused: either way this one is not needed.
			_ = os.RemoveAll(tmp)
		}
	}
	return m.wasm, mc, done, nil
}

// machineCode returns a compilation cache over a private copy of the machine code of the entry in final
// (checked by read), and release, which removes the copy once the module is loaded.
//
// wazero's cache is a live directory: it writes every module it compiles and does not find there, and
// deletes what it cannot use. The entry holds the code of the load that filled it; another load of the same
// policy may need other code (Config.Interruptible, a reload on the interruptible code after the watchdog's
// switch, a different memory limit and so a different glue module). Were wazero given the entry itself, it
// would write that code into it, and every other process would find files the manifest does not list and
// build the entry again: the cache would thrash. The key cannot name the code a load needs (the backend
// asks for the policy's entry before it knows, and wazero keys its files by CPU features we cannot see),
// so wazero gets a directory of its own: hard links to the entry's files (no copy, and they stay readable
// if another process removes the entry meanwhile), or copies where the file system has no hard links. What
// wazero adds there is discarded with it. When no copy can be made, an in-memory cache: wazero compiles.
//
// The links are not checked again: nobody but this user can write the cache (OpenCache), and this user's
// processes only rename sound entries into place and remove whole ones.
func (c *Cache) machineCode(final string) (wazero.CompilationCache, func()) {
	private, err := os.MkdirTemp(c.dir, loadPrefix)
	if err != nil {
		return wazero.NewCompilationCache(), func() {}
	}
	release := func() { _ = os.RemoveAll(private) }
	if err := linkTree(filepath.Join(final, wazeroDir), filepath.Join(private, wazeroDir)); err != nil {
		release()
		return wazero.NewCompilationCache(), func() {}
	}
	mc, err := wazero.NewCompilationCacheWithDir(filepath.Join(private, wazeroDir))
	if err != nil {
		release()
		return wazero.NewCompilationCache(), func() {}
	}
	return mc, release
}

// linkTree makes dst a tree of hard links (or copies) to the files under src: directories and regular
// files only, never a symbolic link.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("wasm cache: %s is not a regular file", path)
		}
		if os.Link(path, to) == nil {
			return nil
		}
		data, err := readPrivate(path)
		if err != nil {
			return err
		}
		return writeFileSync(to, data)
	})
}

// read returns the module of the entry in dir after checking the entry whole: that it is private (see
// checkPrivate), the module's header, key and checksum, and every file of wazero's against the manifest (a
// file the manifest does not list is a fault too). fs.ErrNotExist when there is no entry.
func (c *Cache) read(dir, key string) ([]byte, error) {
	info, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if err := checkPrivate(dir, info, true); err != nil {
		return nil, err
	}
	data, err := readPrivate(filepath.Join(dir, moduleFile))
	if err != nil {
		return nil, err
	}
	wasm, err := decodeModuleFile(data, key)
	if err != nil {
		return nil, err
	}
	manifest, err := readPrivate(filepath.Join(dir, manifestFile))
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

// readPrivate reads the file name, which must be a regular file that is private (checkPrivate), opened
// without following a symbolic link where the system can (openNoFollow): what is checked is what is read.
func readPrivate(name string) ([]byte, error) {
	f, err := openNoFollow(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkPrivate(name, info, false); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// checkType says what is wrong with info, the Lstat of name, for a directory of the cache (dir) or a file
// of one: the part of checkPrivate that every system can check.
func checkType(name string, info fs.FileInfo, dir bool) error {
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("wasm cache: %s is a symbolic link", name)
	case dir && !info.IsDir():
		return fmt.Errorf("wasm cache: %s is not a directory", name)
	case !dir && !info.Mode().IsRegular():
		return fmt.Errorf("wasm cache: %s is not a regular file", name)
	}
	return nil
}

// hashTree returns the SHA-256 of every regular file under root, by slash path relative to it, after
// checking that each directory and file is private; wazero's own temporary files (a fill in progress in
// this directory) count as files, so they fail the check.
func hashTree(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			return checkPrivate(path, info, true)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("wasm cache: %s is not a regular file", path)
		}
		data, err := readPrivate(path)
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
