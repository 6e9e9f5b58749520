package policytest

import "testing"

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
