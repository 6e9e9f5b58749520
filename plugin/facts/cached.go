package facts

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cached remembers what p answers for ttl, so that a burst of calls about one cluster asks the APIs once.
// Concurrent misses for the same request share one call to p; errors are not remembered.
//
// The shared call is not any one caller's: it runs on a context that the caller who started it going away
// does not end (its deadline still holds), and each caller waits for it only as long as its own context
// lasts; a caller whose joined call ended with the starter's deadline asks again. Otherwise the first
// caller hanging up, or a short deadline, would decide what every other caller hears, and a gate failing
// open would forward those calls with their facts unchecked.
//
// The returned Provider is also a Forgetter: the gate has it forget a cluster once it has forwarded a call
// that changes the cluster, so that the next call is not decided on the facts from before.
func Cached(p Provider, ttl time.Duration) Provider {
	return &cached{p: p, ttl: ttl, now: time.Now, entries: map[Request]cachedFacts{}}
}

// Forgetter is implemented by a Provider that remembers answers. Forget drops what it remembers about the
// cluster, and what a call already under way when Forget is called would remember.
type Forgetter interface {
	Forget(projectID, clusterID string)
}

// maxCached bounds the cache: past it, expired entries are dropped, and if none are, everything is.
const maxCached = 10000

type cached struct {
	p   Provider
	ttl time.Duration
	now func() time.Time

	group   singleflight.Group
	mu      sync.Mutex
	entries map[Request]cachedFacts
	forgets uint64 // Forget calls so far: a call that started before one does not store its answer
}

type cachedFacts struct {
	facts   *Facts
	expires time.Time
}

func (c *cached) Facts(ctx context.Context, r Request) (*Facts, error) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		e, ok := c.entries[r]
		forgets := c.forgets
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.facts, nil
		}
		// The key holds the Forget count: a caller that comes after a Forget never joins a call that began
		// before it.
		call := c.group.DoChan(flightKey(r, forgets), func() (any, error) { return c.fly(ctx, r, forgets) })
		select {
		case res := <-call:
			out := res.Val.(flight)
			if out.panicked != nil {
				panic(out.panicked) // on the caller's goroutine, where it would have been without the cache
			}
			if res.Err != nil {
				// A call this one joined that ended with its own context (another caller's deadline) says
				// nothing of what this caller's context would have heard: ask again, once, shared with
				// whoever else asks again.
				if out.ended && ctx.Err() == nil && attempt == 0 {
					continue
				}
				return nil, res.Err
			}
			return out.facts, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// flight is what one shared call to the provider gave.
type flight struct {
	facts    *Facts
	ended    bool // the call's context had ended when the provider returned
	panicked any  // what the provider panicked with, re-raised on each caller's goroutine
}

// fly makes the shared call for r, on a context that the caller who started it going away does not end.
// A panic is caught here (singleflight would re-raise it on a goroutine of its own, where nothing can
// recover it) and handed to the callers.
func (c *cached) fly(ctx context.Context, r Request, forgets uint64) (out any, err error) {
	shared, cancel := detach(ctx)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			out, err = flight{panicked: v}, fmt.Errorf("facts: the provider panicked: %v", v)
		}
	}()
	f, err := c.p.Facts(shared, r)
	if err != nil {
		return flight{ended: shared.Err() != nil}, err
	}
	c.store(r, f, forgets)
	return flight{facts: f}, nil
}

// detach returns a context with ctx's deadline and values but not its cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, deadline)
	}
	return d, func() {}
}

// flightKey names r, asked after forgets Forget calls, unambiguously whatever its IDs hold (each is
// prefixed by its length).
func flightKey(r Request, forgets uint64) string {
	b := strconv.AppendUint(nil, forgets, 10)
	for _, s := range []string{r.ProjectID, r.ClusterID, r.KeyID} {
		b = append(strconv.AppendInt(append(b, ' '), int64(len(s)), 10), ':')
		b = append(b, s...)
	}
	return string(b)
}

// Forget drops every entry about the cluster (whatever key it was asked with), and keeps calls under way
// from storing theirs.
func (c *cached) Forget(projectID, clusterID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgets++
	for r := range c.entries {
		if r.ProjectID == projectID && r.ClusterID == clusterID {
			delete(c.entries, r)
		}
	}
}

// store remembers f for r, unless a Forget came after the call began (forgets is the count then).
func (c *cached) store(r Request, f *Facts, forgets uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != forgets {
		return
	}
	now := c.now()
	if len(c.entries) >= maxCached {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCached {
			clear(c.entries)
		}
	}
	c.entries[r] = cachedFacts{facts: f, expires: now.Add(c.ttl)}
}
