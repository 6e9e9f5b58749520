package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm/internal/opahost"
)

var exampleDoc = []byte(`{"request": {"project_id": "89cd04f168b84af6be287f71730fdb4b", "cluster_id": "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
	"body": {"encrypt": {"crypt_algorithm": "generalCipher", "master_key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce"}}},
	"cluster": {"version": "8.1.3.310", "guest_agent_version": "8.3.0.200", "status": "AVAILABLE", "task_status": "",
		"encrypted": false, "dr_relationship": false},
	"key": {"key_id": "0f3196c8-5c23-469f-84da-92ecd2499dce", "key_state": "2"}}`)

// decideWithCache prepares the default policy on a new backend with the cache in dir and decides the
// example; it returns the decision's JSON.
func decideWithCache(t testing.TB, dir string) []byte {
	t.Helper()
	return decideWithCacheOf(t, policy.Default, dir)
}

// tinyPolicy is testdata/tiny: the tests of what the cache does with an entry use it, since compiling the
// default policy takes seconds under the race detector and the entry's layout does not depend on it.
var tinyPolicy = sync.OnceValues(func() (*policy.Policy, error) { return policy.Load("testdata/tiny") })

// openCacheFor opens the cache in dir and the policy load returns.
func openCacheFor(t testing.TB, load func() (*policy.Policy, error), dir string) (*Cache, *policy.Policy) {
	t.Helper()
	c, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// decideWithCacheOf is decideWithCache for the policy load returns.
func decideWithCacheOf(t testing.TB, load func() (*policy.Policy, error), dir string) []byte {
	t.Helper()
	cache, p := openCacheFor(t, load, dir)
	eng, err := policy.New(context.Background(), p, policy.WithBackend(Backend(Config{Cache: cache, MaxInstances: 1})))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	d, err := eng.CheckJSON(context.Background(), exampleDoc)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(d)
	return out
}

// entries lists the cache's complete entries and the fills in progress (or left behind).
func entries(t testing.TB, dir string) (complete, fills []string) {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		switch {
		case strings.HasPrefix(e.Name(), "precheck-"):
			complete = append(complete, filepath.Join(dir, e.Name()))
		case strings.HasPrefix(e.Name(), ".fill-"):
			fills = append(fills, e.Name())
		}
	}
	return complete, fills
}

// The cache's tests count the cache's fills, so they do not run in parallel with each other. (A fill
// compiles the module with OPA's compiler unless the process has compiled it already; what the tests
// count is that the entry was not used.)
var cacheTests sync.Mutex

func TestCacheSkipsTheCompilerWhenWarm(t *testing.T) {
	WithoutRace.Delegate(t)
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	before := cacheFills.Load()
	cold := decideWithCache(t, dir)
	if n := cacheFills.Load() - before; n != 1 {
		t.Fatalf("cold: %d fills, want 1", n)
	}
	complete, fills := entries(t, dir)
	if len(complete) != 1 || len(fills) != 0 {
		t.Fatalf("after the first fill: entries %v, fills %v", complete, fills)
	}
	warm := decideWithCache(t, dir)
	if n := cacheFills.Load() - before; n != 1 {
		t.Errorf("warm: %d compilations in all, want the cold one only", n)
	}
	if !bytes.Equal(cold, warm) {
		t.Errorf("decisions differ:\ncold %s\nwarm %s", cold, warm)
	}
}

// A corrupt, truncated, incomplete, foreign or tampered entry, or one that someone else could have written
// (a file or directory of it another user's, writable by group or others, or a symbolic link), is detected,
// removed and built again; it is never used. Each kind of damage is held to read's check (a fill compiles
// the module, which takes a while under the race detector); the last goes through the whole rebuild.
func TestCacheRebuildsACorruptEntry(t *testing.T) {
	WithoutRace.Delegate(t)
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	want := decideWithCacheOf(t, tinyPolicy, dir)
	complete, _ := entries(t, dir)
	entry := complete[0]
	key := filepath.Base(entry)[len("precheck-"):]
	pristine := filepath.Join(t.TempDir(), "entry")
	copyEntry(t, pristine, entry)
	machineCode := func() string {
		var found string
		filepath.WalkDir(filepath.Join(entry, wazeroDir), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && found == "" {
				found = path
			}
			return nil
		})
		return found
	}
	chmod := func(mode os.FileMode, name func() string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.Chmod(name(), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	// symlink replaces name with a link to the pristine entry's copy of it: the same bytes, somewhere else.
	symlink := func(name func() string) func(t *testing.T) {
		return func(t *testing.T) {
			name := name()
			rel, _ := filepath.Rel(entry, name)
			if err := os.RemoveAll(name); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(pristine, rel), name); err != nil {
				t.Skip(err)
			}
		}
	}
	path := func(elem ...string) func() string {
		return func() string { return filepath.Join(append([]string{entry}, elem...)...) }
	}
	c := &Cache{dir: dir, build: buildIdentity()}
	for _, tc := range []struct {
		name  string
		owner bool // the case needs owner and mode checks (unix)
		spoil func(t *testing.T)
	}{
		{"module byte flipped", false, func(t *testing.T) { flip(t, filepath.Join(entry, moduleFile), -1) }},
		{"module truncated", false, func(t *testing.T) { truncate(t, filepath.Join(entry, moduleFile)) }},
		{"module of another entry", false, func(t *testing.T) {
			data, _ := os.ReadFile(filepath.Join(entry, moduleFile))
			os.WriteFile(filepath.Join(entry, moduleFile), bytes.Replace(data, []byte(key), bytes.Repeat([]byte("0"), 32), 1), 0o600)
		}},
		{"machine code byte flipped", false, func(t *testing.T) { flip(t, machineCode(), 40) }},
		{"machine code truncated", false, func(t *testing.T) { truncate(t, machineCode()) }},
		{"machine code added", false, func(t *testing.T) {
			os.WriteFile(filepath.Join(filepath.Dir(machineCode()), strings.Repeat("ab", 32)), []byte("WAZEVO"), 0o600)
		}},
		{"manifest removed", false, func(t *testing.T) { os.Remove(filepath.Join(entry, manifestFile)) }},
		{"module removed", false, func(t *testing.T) { os.Remove(filepath.Join(entry, moduleFile)) }},
		{"entry writable by all", true, chmod(0o777, path())},
		{"module writable by its group", true, chmod(0o620, path(moduleFile))},
		{"manifest writable by others", true, chmod(0o602, path(manifestFile))},
		{"machine code writable by all", true, chmod(0o666, machineCode)},
		{"machine code directory writable by all", true, chmod(0o777, path(wazeroDir))},
		{"module another user's", true, func(t *testing.T) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file away")
			}
			if err := os.Chown(path(moduleFile)(), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"module a symbolic link", false, symlink(path(moduleFile))},
		{"manifest a symbolic link", false, symlink(path(manifestFile))},
		{"machine code a symbolic link", false, symlink(machineCode)},
		{"machine code directory a symbolic link", false, symlink(path(wazeroDir))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner && !ownerChecked {
				t.Skip("owner and mode are checked on unix only")
			}
			if err := os.RemoveAll(entry); err != nil {
				t.Fatal(err)
			}
			copyEntry(t, entry, pristine)
			if _, err := c.read(entry, key); err != nil {
				t.Fatalf("the pristine entry is refused: %v", err)
			}
			tc.spoil(t)
			if _, err := c.read(entry, key); err == nil {
				t.Fatal("the damaged entry is read as sound")
			}
		})
	}

	// The last damage through the whole rebuild: removed, built again, used. (A directory without its
	// module, unlike no directory, must be removed before the new entry can take its place.)
	before := cacheFills.Load()
	if got := decideWithCacheOf(t, tinyPolicy, dir); !bytes.Equal(got, want) {
		t.Errorf("decision %s, want %s", got, want)
	}
	if n := cacheFills.Load() - before; n != 1 {
		t.Errorf("%d compilations, want the entry built again", n)
	}
	if complete, fills := entries(t, dir); len(complete) != 1 || len(fills) != 0 {
		t.Errorf("entries %v, fills %v", complete, fills)
	}
	if _, err := c.read(entry, key); err != nil {
		t.Errorf("the rebuilt entry is not sound: %v", err)
	}
	before = cacheFills.Load()
	decideWithCacheOf(t, tinyPolicy, dir)
	if n := cacheFills.Load() - before; n != 0 {
		t.Errorf("the rebuilt entry is not used: %d compilations", n)
	}
}

func flip(t *testing.T, name string, at int) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at = len(data) + at
	}
	data[at] ^= 0xff
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, name string) {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// Goroutines with backends and caches of their own, and processes, fill one entry at once: each decides
// right, one entry is left, and no fill in progress.
func TestCacheFilledByManyAtOnce(t *testing.T) {
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	var wg sync.WaitGroup
	results := make([][]byte, 2)
	for i := range results {
		wg.Go(func() { results[i] = decideWithCacheOf(t, tinyPolicy, dir) })
	}
	// Two more processes: this test binary, running only the helper below.
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCacheFillHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "PRECHECK_CACHE_FILL_DIR="+dir)
			outs[i], errs[i] = cmd.CombinedOutput()
		})
	}
	wg.Wait()
	want := results[0]
	if !bytes.Contains(want, []byte(`"allowed":true`)) {
		t.Fatalf("goroutine 0: %s, want the tiny policy's allowed decision", want)
	}
	for i, r := range results {
		if !bytes.Equal(r, want) {
			t.Errorf("goroutine %d: %s", i, r)
		}
	}
	for i := range outs {
		if errs[i] != nil || !bytes.Contains(outs[i], want) {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	complete, fills := entries(t, dir)
	if len(complete) != 1 || len(fills) != 0 {
		t.Errorf("entries %v, fills %v", complete, fills)
	}
	if _, err := (&Cache{dir: dir, build: buildIdentity()}).read(complete[0], filepath.Base(complete[0])[len("precheck-"):]); err != nil {
		t.Errorf("the entry left is not sound: %v", err)
	}
}

// TestCacheFillHelper is the process TestCacheFilledByManyAtOnce starts; it does nothing otherwise.
func TestCacheFillHelper(t *testing.T) {
	dir := os.Getenv("PRECHECK_CACHE_FILL_DIR")
	if dir == "" {
		t.Skip("run by TestCacheFilledByManyAtOnce")
	}
	fmt.Printf("%s\n", decideWithCacheOf(t, tinyPolicy, dir))
}

// A cache directory that someone else can write is refused, not used: anyone can compute an entry's key and
// its checksums, so whoever can write the directory can plant an entry (another policy's module, machine
// code) that passes every check of read. The reviewer planted an allow-everything module under the key of
// an always-deny policy in a 0777 directory, and the decision became allowed.
func TestCacheRefusesADirectoryOthersCanWrite(t *testing.T) {
	good := filepath.Join(t.TempDir(), "fresh", "precheck")
	if _, err := OpenCache(good); err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	if info, err := os.Lstat(good); err != nil || ownerChecked && info.Mode().Perm() != 0o700 {
		t.Fatalf("the new directory: %v, %v", info.Mode(), err)
	}
	if _, err := OpenCache(good); err != nil {
		t.Fatalf("the directory made before: %v", err)
	}
	for _, tc := range []struct {
		name    string
		owner   bool // the case needs owner and mode checks (unix)
		make    func(t *testing.T, dir string)
		message string
	}{
		{"writable by all", true, func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777) }, "writable by group or others"},
		{"writable by its group", true, func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770) }, "writable by group or others"},
		{"writable by others", true, func(t *testing.T, dir string) { mkdirMode(t, dir, 0o702) }, "writable by group or others"},
		{"another user's", true, func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory away")
			}
			mkdirMode(t, dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
		{"a symbolic link to a private directory", false, func(t *testing.T, dir string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			mkdirMode(t, target, 0o700)
			if err := os.Symlink(target, dir); err != nil {
				t.Skip(err)
			}
		}, "is a symbolic link"},
		{"a file", false, func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ""}, // MkdirAll's own error or checkType's: either says what is there
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner && !ownerChecked {
				t.Skip("owner and mode are checked on unix only")
			}
			dir := filepath.Join(t.TempDir(), "precheck")
			tc.make(t, dir)
			c, err := OpenCache(dir)
			if err == nil {
				t.Fatalf("opened %s", c.Dir())
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q, want one naming %s and saying %q", err, dir, tc.message)
			}
		})
	}
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // not Mkdir's mode: the umask would take bits off
		t.Fatal(err)
	}
}

// copyEntry copies the entry src to dst, private as the cache makes it (os.CopyFS leaves the umask's mode).
func copyEntry(t *testing.T, dst, src string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dst, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o700)
		}
		return os.Chmod(path, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A load that needs machine code the entry does not hold (here the interruptible code; also a reload after
// the watchdog's switch, another memory limit) does not write it into the entry: the reviewer's next
// normal load found "4 machine-code files, the manifest lists 2" and built the entry again, and so did
// every process after a load of the other kind.
func TestCacheEntryIsNotWrittenAfterCommit(t *testing.T) {
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	want := decideWithCacheOf(t, tinyPolicy, dir)
	complete, _ := entries(t, dir)
	entry := complete[0]
	key := filepath.Base(entry)[len("precheck-"):]
	sealed, err := hashTree(entry)
	if err != nil {
		t.Fatal(err)
	}

	before := cacheFills.Load()
	cache, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tinyPolicy()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(context.Background(), p, policy.WithBackend(Backend(Config{Cache: cache, MaxInstances: 1, Interruptible: true})))
	if err != nil {
		t.Fatal(err)
	}
	d, err := eng.CheckJSON(context.Background(), exampleDoc)
	eng.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(d); !bytes.Equal(got, want) {
		t.Errorf("interruptible: %s, want %s", got, want)
	}
	after, err := hashTree(entry)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(after, sealed) {
		t.Errorf("the interruptible load changed the entry:\nbefore %v\nafter  %v", sealed, after)
	}
	if _, err := cache.read(entry, key); err != nil {
		t.Errorf("the entry is not sound after the interruptible load: %v", err)
	}
	if got := decideWithCacheOf(t, tinyPolicy, dir); !bytes.Equal(got, want) {
		t.Errorf("fast: %s, want %s", got, want)
	}
	if n := cacheFills.Load() - before; n != 0 {
		t.Errorf("%d fills after the interruptible load, want the entry used", n)
	}
	noTemporaries(t, dir)
}

// noTemporaries fails the test if a fill or a load's copy is left in the cache dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if strings.HasPrefix(e.Name(), fillPrefix) || strings.HasPrefix(e.Name(), loadPrefix) {
			t.Errorf("%s left in the cache", e.Name())
		}
	}
}

// Another process may remove an entry (it found it damaged) between this one's check and wazero's reading
// it: the load still succeeds, since the cache is only a speed-up. The reviewer's interleaving: module,
// RemoveAll, load ("opahost: compiling policy module: open …/wazero/…tmp: no such file or directory").
func TestCacheEntryRemovedWhileLoading(t *testing.T) {
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	decideWithCacheOf(t, tinyPolicy, dir)
	complete, _ := entries(t, dir)
	c, p := openCacheFor(t, tinyPolicy, dir)
	ctx := context.Background()
	before := cacheFills.Load()
	wasm, machineCode, done, err := c.module(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer machineCode.Close(ctx)
	if n := cacheFills.Load() - before; n != 0 {
		t.Fatalf("%d fills, want the entry used", n)
	}
	if err := os.RemoveAll(complete[0]); err != nil {
		t.Fatal(err)
	}
	host, err := opahost.Load(ctx, wasm, mustJSON(p.Data()), opahost.Config{MaxInstances: 1, CompilationCache: machineCode})
	if err != nil {
		t.Fatalf("loading after the entry was removed: %v", err)
	}
	defer host.Close(ctx)
	done(true)
	noTemporaries(t, dir)
}

// A load that failed (the backend then loads on an in-memory cache, or fails) leaves nothing in the cache:
// neither a fill, which is not an entry, nor a load's copy of one.
func TestCacheDoneWithoutALoad(t *testing.T) {
	cacheTests.Lock()
	defer cacheTests.Unlock()
	dir := t.TempDir()
	c, p := openCacheFor(t, tinyPolicy, dir)
	ctx := context.Background()
	for _, what := range []string{"fill", "hit"} {
		if what == "hit" {
			decideWithCacheOf(t, tinyPolicy, dir)
		}
		_, machineCode, done, err := c.module(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		machineCode.Close(ctx)
		done(false)
		noTemporaries(t, dir)
		complete, _ := entries(t, dir)
		if want := map[string]int{"fill": 0, "hit": 1}[what]; len(complete) != want {
			t.Errorf("%s: %d entries after a failed load, want %d", what, len(complete), want)
		}
	}
}

// What a load that failed leaves behind (its fill, its copy of an entry) is removed once it is old.
func TestCacheRemovesStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * staleAfter)
	for _, name := range []string{fillPrefix + "old", loadPrefix + "old", fillPrefix + "new", loadPrefix + "new", "precheck-old"} {
		if err := os.MkdirAll(filepath.Join(dir, name, wazeroDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, "new") {
			if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := OpenCache(dir); err != nil {
		t.Fatal(err)
	}
	var left []string
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		left = append(left, e.Name())
	}
	if want := []string{fillPrefix + "new", loadPrefix + "new", "precheck-old"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
