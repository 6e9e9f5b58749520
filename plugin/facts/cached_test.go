package facts_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// blocking is a provider that answers once released, or fails with its context's end, as dwsapi does.
type blocking struct {
	calls   atomic.Int32
	release chan struct{}
}

func (b *blocking) Facts(ctx context.Context, r facts.Request) (*facts.Facts, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
		return &facts.Facts{Tenant: &policy.Tenant{Class: r.ClusterID}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestCachedFirstCallerHangingUp: the caller who started the shared call going away ends its own wait at
// once, not the call: a caller who joined it still gets the facts (before, it got context.Canceled, which a
// gate failing open forwarded unchecked).
func TestCachedFirstCallerHangingUp(t *testing.T) {
	t.Parallel()
	b := &blocking{release: make(chan struct{})}
	p := facts.Cached(b, time.Minute)
	r := facts.Request{ProjectID: "p", ClusterID: "c"}

	first, hangUp := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() { _, err := p.Facts(first, r); firstDone <- err }()
	for b.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	type answer struct {
		f   *facts.Facts
		err error
	}
	joinedDone := make(chan answer, 1)
	go func() { f, err := p.Facts(context.Background(), r); joinedDone <- answer{f, err} }()
	time.Sleep(20 * time.Millisecond) // let the second caller join the call under way

	hangUp()
	select {
	case err := <-firstDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("first caller: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller who hung up is still waiting")
	}
	close(b.release)
	a := <-joinedDone
	if a.err != nil || a.f.Tenant.Class != "c" {
		t.Fatalf("joined caller: %+v %v, want the facts", a.f, a.err)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("%d calls to the provider, want 1 shared", n)
	}
}

// TestCachedWaitIsBoundedByTheCallersContext: a caller whose deadline ends while the shared call is under
// way gets its own context's error at once.
func TestCachedWaitIsBoundedByTheCallersContext(t *testing.T) {
	t.Parallel()
	b := &blocking{release: make(chan struct{})}
	defer close(b.release)
	p := facts.Cached(b, time.Minute)
	go func() { _, _ = p.Facts(context.Background(), facts.Request{ClusterID: "c"}) }()
	for b.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := p.Facts(ctx, facts.Request{ClusterID: "c"}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5s after its deadline of 20ms")
	}
}

// TestCachedForget: after Forget the cluster's facts are asked again, whatever key they were asked with,
// and a call already under way does not store the facts from before; other clusters stay.
func TestCachedForget(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	gate := make(chan struct{}, 8) // one token per answer the provider may give
	p := facts.Cached(facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		calls.Add(1)
		<-gate
		return &facts.Facts{Tenant: &policy.Tenant{Class: r.ClusterID}}, nil
	}), time.Minute)
	forgetter, ok := p.(facts.Forgetter)
	if !ok {
		t.Fatal("facts.Cached is not a facts.Forgetter")
	}
	ctx := context.Background()
	ask := func(cluster, key string) {
		t.Helper()
		if _, err := p.Facts(ctx, facts.Request{ProjectID: "p", ClusterID: cluster, KeyID: key}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		gate <- struct{}{}
	}
	ask("c", "k1")
	ask("c", "k2")
	ask("d", "k1")
	ask("c", "k1") // remembered
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	forgetter.Forget("p", "c")
	gate <- struct{}{}
	ask("c", "k2")
	ask("d", "k1") // remembered
	if n := calls.Load(); n != 4 {
		t.Fatalf("after Forget: %d calls, want 4 (c asked again, d remembered)", n)
	}

	// A call under way when Forget comes answers its caller but is not remembered.
	done := make(chan struct{})
	go func() { ask("e", ""); close(done) }()
	for calls.Load() != 5 {
		time.Sleep(time.Millisecond)
	}
	forgetter.Forget("p", "e")
	gate <- struct{}{}
	<-done
	gate <- struct{}{}
	ask("e", "")
	if n := calls.Load(); n != 6 {
		t.Errorf("%d calls, want 6: the answer of the call under way at Forget was remembered", n)
	}
}
