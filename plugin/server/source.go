package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/bits"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/policy"
)

// Source is where the server's policy comes from. Load returns the policy as it is now (the same *Policy as
// before when nothing changed); Watch calls changed whenever the policy may have changed, until ctx ends.
type Source interface {
	Load(ctx context.Context) (*policy.Policy, error)
	Watch(ctx context.Context, changed func())
	// String names the source for logs and /readyz.
	String() string
}

// Files is a policy on disk (the embedded default, a directory or a bundle file, with or without
// overrides), reloaded when a file under Paths changes.
type Files struct {
	// Read loads the policy, e.g. policy.Default or func() { return policy.LoadWithOverrides(dir) }.
	Read func() (*policy.Policy, error)
	// Paths are the files and directories to watch; none for the embedded default.
	Paths []string
	// Name names the source.
	Name string
}

func (f *Files) String() string { return f.Name }

func (f *Files) Load(context.Context) (*policy.Policy, error) { return f.Read() }

// Watch follows the paths with fsnotify (directories with their subdirectories) and reports changes after a
// short quiet period, so that an editor's burst of writes is one reload.
func (f *Files) Watch(ctx context.Context, changed func()) {
	if len(f.Paths) == 0 {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return
	}
	defer w.Close()
	for _, p := range f.Paths {
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = w.Add(path)
			}
			return nil
		})
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			_ = w.Add(filepath.Dir(p)) // a file is watched through its directory: editors replace files
		}
	}
	const quiet = 200 * time.Millisecond
	var timer *time.Timer
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = w.Add(ev.Name)
				}
			}
			if timer == nil {
				timer = time.AfterFunc(quiet, changed)
			} else {
				timer.Reset(quiet)
			}
		case <-w.Errors:
		}
	}
}

// BundleService is a policy served as an OPA bundle over HTTP, the protocol OPA's own bundle servers speak:
// polled with If-None-Match, so that an unchanged bundle (304 Not Modified) costs nothing. With a
// verification config the bundle must be signed; an unsigned or tampered bundle is refused and the server
// keeps the revision it has.
//
// A poll that fails (the service unreachable, an error status, a bundle refused) is logged, and the next
// one waits twice as long as the last, up to maxBackoff times Interval: a service that is down is not
// hammered, and one that comes back is noticed within a few intervals.
type BundleService struct {
	URL      string
	Client   *http.Client // default: http.DefaultClient with a 30 s timeout
	Interval time.Duration
	Verify   *bundle.VerificationConfig
	// Logger is told of each failed poll (its error redacted) with when the next one is, and of the
	// first poll that succeeds after failures; nil logs nothing.
	Logger *slog.Logger

	mu       sync.Mutex
	etag     string
	last     *policy.Policy
	failures int // polls failed in a row
}

// maxBackoff bounds the wait after failed polls, in Intervals.
const maxBackoff = 8

// String names the service by its URL without what may be a secret in it (a bundle URL may carry a token,
// and the name goes to logs, errors, the policy's source and /readyz): the password of its user
// information and the value of every query parameter are masked, its fragment dropped.
func (b *BundleService) String() string {
	u, err := url.Parse(b.URL)
	if err != nil {
		return "(a bundle URL that cannot be parsed)"
	}
	query := u.Query()
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	name := u.Redacted()
	for i, key := range slices.Sorted(maps.Keys(query)) {
		name += string("?&"[min(i, 1)]) + url.QueryEscape(key) + "=" + redact.Mask
	}
	return redact.Text(name, nil)
}

// errorf is an error about the service, named as String names it.
func (b *BundleService) errorf(format string, args ...any) error {
	return fmt.Errorf("bundle %s: "+format, append([]any{b.String()}, args...)...)
}

// withoutURL is err without the URL net/http quotes in it (the request's, or a redirect's): it may carry
// a token.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Load fetches the bundle unless the server says it has not changed.
func (b *BundleService) Load(ctx context.Context) (*policy.Policy, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.load(ctx)
	if err != nil {
		b.failures++
		if b.Logger != nil {
			// The service's answer is quoted in the error: text from elsewhere, redacted before it is logged.
			b.Logger.Warn("bundle service poll failed", "url", b.String(), "failures", b.failures,
				"next_poll", b.delay(), "error", redact.Text(err.Error(), nil))
		}
		return nil, err
	}
	if b.failures > 0 && b.Logger != nil {
		b.Logger.Info("bundle service poll succeeded again", "url", b.String(), "after_failures", b.failures)
	}
	b.failures = 0
	return p, nil
}

func (b *BundleService) load(ctx context.Context) (*policy.Policy, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return nil, b.errorf("%w", withoutURL(err))
	}
	if b.etag != "" && b.last != nil {
		req.Header.Set("If-None-Match", b.etag)
	}
	client := b.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, b.errorf("%w", withoutURL(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		if b.last == nil {
			return nil, b.errorf("304 Not Modified, but no bundle was loaded before")
		}
		return b.last, nil
	case http.StatusOK:
	default:
		return nil, b.errorf("%s", resp.Status)
	}
	p, err := policy.ReadBundle(resp.Body, b.String(), b.Verify) // at most policy.MaxBundleBytes of it
	if err != nil {
		return nil, err
	}
	b.etag, b.last = resp.Header.Get("ETag"), p
	return p, nil
}

// Watch asks again every Interval (default 30 s), and after failed polls later, backing off.
func (b *BundleService) Watch(ctx context.Context, changed func()) {
	for {
		b.mu.Lock()
		wait := b.delay()
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			changed()
		}
	}
}

// delay is how long to wait before the next poll: Interval, doubled for each poll failed in a row, at
// most maxBackoff Intervals. b.mu must be held.
func (b *BundleService) delay() time.Duration {
	interval := b.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return interval * time.Duration(1<<min(b.failures, bits.Len(maxBackoff)-1))
}

// errNotReady is answered while no policy has loaded yet.
var errNotReady = errors.New("no policy is loaded yet")
