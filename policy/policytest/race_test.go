package policytest

import (
	"slices"
	"testing"
	"time"
)

func TestWithoutRaceFlag(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"-race":                  "",
		"-mod=mod -race -tags=x": "-mod=mod -tags=x",
		"-race=true -count=1":    "-count=1",
		"-racey -trimpath":       "-racey -trimpath",
	} {
		if got := withoutRaceFlag(in); got != want {
			t.Errorf("withoutRaceFlag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestForwardedFlags(t *testing.T) {
	base := []string{"test", "-count=1", "-json"}
	for _, c := range []struct {
		short       bool
		deadline    time.Time
		hasDeadline bool
		want        []string
	}{
		{false, time.Time{}, false, base},
		{true, time.Time{}, false, append(base[:3:3], "-short")},
		{false, time.Now().Add(90*time.Second + 200*time.Millisecond), true, append(base[:3:3], "-timeout", "1m30s")},
		{true, time.Now().Add(-time.Minute), true, append(base[:3:3], "-short", "-timeout", "1s")},
	} {
		if got := forwardedFlags(c.short, c.deadline, c.hasDeadline); !slices.Equal(got, c.want) {
			t.Errorf("forwardedFlags(%v, %v, %v) = %q, want %q", c.short, time.Until(c.deadline).Round(time.Second), c.hasDeadline, got, c.want)
		}
	}
}
