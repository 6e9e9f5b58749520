package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// choiceValue is a flag that takes one of a few names (a format, an engine), in any letter case, and
// refuses any other naming the choices. The shells complete the names.
type choiceValue struct {
	what  string // "format", "engine": how the error calls the value
	value *string
	names []string
}

func (c *choiceValue) String() string { return *c.value }
func (c *choiceValue) Type() string   { return "string" }

func (c *choiceValue) Set(s string) error {
	if name := strings.ToLower(s); slices.Contains(c.names, name) {
		*c.value = name
		return nil
	}
	return fmt.Errorf("unknown %s %q (want %s)", c.what, s, strings.Join(c.names, "|"))
}

// choiceFlag declares --name, one of names, with the completion of its values.
func choiceFlag(cmd *cobra.Command, p *string, name, what, value string, names []string, usage string) {
	*p = value
	// The backquoted names are what pflag shows in place of the flag's type: --format text|json.
	cmd.Flags().Var(&choiceValue{what: what, value: p, names: names}, name, usage+": `"+strings.Join(names, "|")+"`")
	// Registering on a flag just declared cannot fail.
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

// formatFlag declares --format with the names of formats.
func formatFlag[T any](cmd *cobra.Command, p *string, formats map[string]T) {
	choiceFlag(cmd, p, "format", "format", "text", slices.Sorted(maps.Keys(formats)), "output")
}

// timeValue is a flag that takes an instant: an RFC 3339 time with its zone, or a date (midnight UTC at its
// start), the two forms a waiver's expiry takes.
type timeValue struct {
	t *time.Time
}

func (v timeValue) Type() string { return "time" }

func (v timeValue) String() string {
	if v.t == nil || v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339)
}

func (v timeValue) Set(s string) error {
	t, err := parseTime(s)
	if err != nil {
		return err
	}
	*v.t = t
	return nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2027-02-01T00:00:00Z) nor a date (2027-02-01)", s)
}

// daysValue is a duration flag that also takes days (14d), as waivers are planned, and prints whole days
// that way (its default shows as 14d, not 336h0m0s).
type daysValue struct {
	d *time.Duration
}

func (v daysValue) Type() string { return "duration" }

func (v daysValue) String() string {
	if v.d == nil {
		return ""
	}
	return formatDays(*v.d)
}

func formatDays(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

func (v daysValue) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return fmt.Errorf("%q is not a number of days (14d) or a duration (36h, 90m)", s)
		}
		*v.d = time.Duration(days * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (30s, 36h) or a number of days (14d)", s)
	}
	*v.d = d
	return nil
}

// durationFlag declares a duration flag that takes days too.
func durationFlag(cmd *cobra.Command, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	cmd.Flags().Var(daysValue{p}, name, usage)
}
