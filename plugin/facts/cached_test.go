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

// TestCachedShortDeadlineDecidesOnlyForItself: a call started by a caller with a short deadline ends with
// that deadline; the callers that joined it, whose own contexts are live, ask again (and share that one
// call) instead of hearing the starter's failure, which for them would have been an answer.
func TestCachedShortDeadlineDecidesOnlyForItself(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	p := facts.Cached(facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the first call outlasts its starter's deadline
			return nil, ctx.Err()
		}
		time.Sleep(50 * time.Millisecond) // long enough for every retry to join this one
		return &facts.Facts{Tenant: &policy.Tenant{Class: r.ClusterID}}, nil
	}), time.Minute)
	r := facts.Request{ClusterID: "c"}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	starter := make(chan error, 1)
	go func() { _, err := p.Facts(short, r); starter <- err }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const joined = 20
	answers := make(chan error, joined)
	for range joined {
		go func() {
			f, err := p.Facts(context.Background(), r)
			if err == nil && f.Tenant.Class != "c" {
				err = errors.New("wrong facts")
			}
			answers <- err
		}()
	}
	if err := <-starter; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("starter: %v, want its own deadline", err)
	}
	for range joined {
		if err := <-answers; err != nil {
			t.Errorf("joined caller: %v, want the facts", err)
		}
	}
	if n := calls.Load(); n > 3 {
		t.Errorf("%d calls to the provider for %d callers: the retries were not shared", n, joined+1)
	}
}

// TestCachedPanicReachesTheCaller: a provider's panic is raised on the caller's goroutine, where the caller
// (net/http, an embedder) can recover it, not on one of singleflight's, which would end the process.
func TestCachedPanicReachesTheCaller(t *testing.T) {
	t.Parallel()
	p := facts.Cached(facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		panic("provider bug")
	}), time.Minute)
	got := func() (v any) {
		defer func() { v = recover() }()
		_, _ = p.Facts(context.Background(), facts.Request{ClusterID: "c"})
		return nil
	}()
	if got != "provider bug" {
		t.Errorf("recovered %v, want the provider's panic", got)
	}
}

// TestCachedJoinsNoCallFromBeforeForget: a caller that comes after Forget starts a call of its own rather
// than joining one that began before it, whose answer may be the facts from before the forwarded call.
func TestCachedJoinsNoCallFromBeforeForget(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	release := make(chan struct{})
	p := facts.Cached(facts.Func(func(ctx context.Context, r facts.Request) (*facts.Facts, error) {
		class := "after"
		if calls.Add(1) == 1 {
			<-release
			class = "before"
		}
		return &facts.Facts{Tenant: &policy.Tenant{Class: class}}, nil
	}), time.Minute)
	r := facts.Request{ProjectID: "p", ClusterID: "c"}
	first := make(chan *facts.Facts, 1)
	go func() { f, _ := p.Facts(context.Background(), r); first <- f }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.(facts.Forgetter).Forget("p", "c")
	later := make(chan *facts.Facts, 1)
	go func() { f, _ := p.Facts(context.Background(), r); later <- f }()
	select {
	case f := <-later:
		if f == nil || f.Tenant.Class != "after" {
			t.Errorf("the caller after Forget got %+v, want the facts of a call of its own", f)
		}
	case <-time.After(5 * time.Second):
		t.Error("the caller after Forget is waiting for the call from before it")
	}
	close(release)
	if f := <-first; f == nil || f.Tenant.Class != "before" {
		t.Errorf("the first caller got %+v", f)
	}
}
