package dwsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
)

// TestWhatTheCallCauses: a gate failing open forwards a call whose facts failed unless the failure is
// facts.ErrNotFound, so every failure the caller can steer must be one: a request the provider will not ask
// about (another project's IDs, a cluster ID that is no path segment) and the API refusing what the call
// names (a 4xx), but not the API being down, slow or busy.
func TestWhatTheCallCauses(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true, nil)
	for name, r := range map[string]facts.Request{
		"other project":      {ProjectID: "0123456789abcdef0123456789abcdef", ClusterID: dwsfake.ExampleClusterID},
		"path in cluster id": {ProjectID: dwsfake.ExampleProjectID, ClusterID: "../../v2/x"},
	} {
		if de := s.factsError(t, context.Background(), r); !errors.Is(de, facts.ErrNotFound) {
			t.Errorf("%s: %v is not facts.ErrNotFound: a gate failing open forwards it", name, de)
		}
	}
	if de := s.factsError(t, canceled(), exampleRequest); errors.Is(de, facts.ErrNotFound) {
		t.Errorf("the caller giving up is not the call naming nothing: %v", de)
	}

	for _, c := range []struct {
		status int
		caused bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusNotFound, true},
		{http.StatusConflict, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, true, nil)
			// A Retry-After past what the transport honours: the throttled answer comes back at once.
			s.srv.Fail(dwsfake.DescribeKey, dwsfake.Fault{Status: c.status, Header: http.Header{"Retry-After": {"3600"}}})
			de := s.factsError(t, context.Background(), exampleRequest)
			if de.Fact != dwsapi.FactKey || de.Status() != c.status {
				t.Fatalf("error = %v, want the key's %d", de, c.status)
			}
			if got := errors.Is(de, facts.ErrNotFound); got != c.caused {
				t.Errorf("errors.Is(%v, facts.ErrNotFound) = %v, want %v", de, got, c.caused)
			}
		})
	}
}

// TestOutageDoesNotHideWhatTheCallCaused: when one call fails for the API's sake and another because of
// what the call names, the answer is the latter, whichever comes first.
func TestOutageDoesNotHideWhatTheCallCaused(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true, nil)
	s.srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Status: http.StatusServiceUnavailable})
	s.srv.Fail(dwsfake.DescribeKey, dwsfake.Fault{Delay: 150 * time.Millisecond, Status: http.StatusNotFound, ErrorCode: dwsfake.CodeKeyNotFound})
	de := s.factsError(t, context.Background(), exampleRequest)
	if !errors.Is(de, facts.ErrNotFound) || de.Fact != dwsapi.FactKey {
		t.Errorf("error = %v (%s): the outage answered first hid the key that does not exist", de, de.Fact)
	}

	// An outage alone is still the answer, once the other calls are in.
	s.srv.Heal(dwsfake.DescribeKey)
	de = s.factsError(t, context.Background(), exampleRequest)
	if errors.Is(de, facts.ErrNotFound) || de.Status() != http.StatusServiceUnavailable {
		t.Errorf("error = %v, want the outage", de)
	}
}

// TestAnswerAboutAnotherCluster: an API that matched the ID loosely and answered about another cluster has
// said nothing of the one the call names, which the caller chose.
func TestAnswerAboutAnotherCluster(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true, nil)
	c := dwsfake.ExampleCluster()
	c.Raw = json.RawMessage(`{"id":"` + strings.ToUpper(dwsfake.ExampleClusterID) + `","status":"AVAILABLE","version":"8.2.0"}`)
	s.srv.PutCluster(c)
	de := s.factsError(t, context.Background(), exampleRequest)
	if de.Fact != dwsapi.FactCluster || !strings.Contains(de.Error(), "is about cluster") || !errors.Is(de, facts.ErrNotFound) {
		t.Errorf("error = %v (not found: %v), want the cluster's answer about another, as facts.ErrNotFound", de, errors.Is(de, facts.ErrNotFound))
	}
}

// TestRedactionKeepsWhatAnErrorIs: an inventory's error whose text is redacted or cut (more than one line,
// or a secret in it) is still the facts.ErrNotFound, or the context error, it was.
func TestRedactionKeepsWhatAnErrorIs(t *testing.T) {
	t.Parallel()
	for _, cause := range []error{facts.ErrNotFound, context.DeadlineExceeded} {
		inv := facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
			return nil, fmt.Errorf("inventory service said:\n  no such cluster (sk=%s): %w", dwsfake.TestSK, cause)
		})
		s := newSetup(t, true, inv)
		de := s.factsError(t, context.Background(), exampleRequest)
		if !errors.Is(de, cause) {
			t.Errorf("%v is no longer %v", de, cause)
		}
		if strings.Contains(de.Error(), "\n") {
			t.Errorf("the error is not one line: %q", de)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
