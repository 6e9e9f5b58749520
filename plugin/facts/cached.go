package facts

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cached remembers what p answers for ttl, so that a burst of calls about one cluster asks the APIs once.
// Concurrent misses for the same request share one call to p; errors are not remembered.
func Cached(p Provider, ttl time.Duration) Provider {
	return &cached{p: p, ttl: ttl, now: time.Now, entries: map[Request]cachedFacts{}}
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
}

type cachedFacts struct {
	facts   *Facts
	expires time.Time
}

func (c *cached) Facts(ctx context.Context, r Request) (*Facts, error) {
	c.mu.Lock()
	e, ok := c.entries[r]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.facts, nil
	}
	key := r.ProjectID + "\x00" + r.ClusterID + "\x00" + r.KeyID
	v, err, _ := c.group.Do(key, func() (any, error) {
		f, err := c.p.Facts(ctx, r)
		if err != nil {
			return nil, err
		}
		c.store(r, f)
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Facts), nil
}

func (c *cached) store(r Request, f *Facts) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
