package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/precheck/precheck/policy"
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

// decideWithCacheOf is decideWithCache for the policy load returns.
func decideWithCacheOf(t testing.TB, load func() (*policy.Policy, error), dir string) []byte {
	t.Helper()
	cache, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := load()
	if err != nil {
		t.Fatal(err)
	}
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

// A corrupt, truncated, incomplete, foreign or tampered entry is detected, removed and built again; it is
// never used. Each kind of damage is held to read's check (a fill compiles the module, which takes a while
// under the race detector); one of them goes through the whole rebuild.
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
	if err := os.CopyFS(pristine, os.DirFS(entry)); err != nil {
		t.Fatal(err)
	}
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
	c := &Cache{dir: dir, build: buildIdentity()}
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T)
	}{
		{"module byte flipped", func(t *testing.T) { flip(t, filepath.Join(entry, moduleFile), -1) }},
		{"module truncated", func(t *testing.T) { truncate(t, filepath.Join(entry, moduleFile)) }},
		{"module of another entry", func(t *testing.T) {
			data, _ := os.ReadFile(filepath.Join(entry, moduleFile))
			os.WriteFile(filepath.Join(entry, moduleFile), bytes.Replace(data, []byte(key), bytes.Repeat([]byte("0"), 32), 1), 0o600)
		}},
		{"machine code byte flipped", func(t *testing.T) { flip(t, machineCode(), 40) }},
		{"machine code truncated", func(t *testing.T) { truncate(t, machineCode()) }},
		{"machine code added", func(t *testing.T) {
			os.WriteFile(filepath.Join(filepath.Dir(machineCode()), strings.Repeat("ab", 32)), []byte("WAZEVO"), 0o600)
		}},
		{"manifest removed", func(t *testing.T) { os.Remove(filepath.Join(entry, manifestFile)) }},
		{"module removed", func(t *testing.T) { os.Remove(filepath.Join(entry, moduleFile)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(entry); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(entry, os.DirFS(pristine)); err != nil {
				t.Fatal(err)
			}
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
