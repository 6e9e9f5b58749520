//go:build wasip1

// Command freeze is a precheck hook, built to WebAssembly, that refuses to convert a cluster to an
// encrypted one during a change freeze: the cluster's own (a tag change-freeze=true), or an organisation's
// (windows of time set when the hook is built). See README.md.
package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const name = "freeze"

// freezeWindows is set when the hook is built:
//
//	-ldflags "-X main.freezeWindows=2026-12-20T00:00:00Z/2027-01-05T00:00:00Z,..."
//
// comma-separated RFC 3339 intervals, start inclusive, end exclusive.
var freezeWindows string

// warnAhead is how long before a freeze the hook warns that one is coming.
const warnAhead = 7 * 24 * time.Hour

type window struct{ start, end time.Time }

// windows are parsed when the module is initialised: malformed windows make the module fail to load, with
// the reason, instead of failing every call.
var windows = func() []window {
	ws, err := parseWindows(freezeWindows)
	if err != nil {
		panic(err)
	}
	return ws
}()

func parseWindows(s string) ([]window, error) {
	var ws []window
	for w := range strings.SplitSeq(s, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		from, to, ok := strings.Cut(w, "/")
		start, err1 := time.Parse(time.RFC3339, strings.TrimSpace(from))
		end, err2 := time.Parse(time.RFC3339, strings.TrimSpace(to))
		if !ok || err1 != nil || err2 != nil || !start.Before(end) {
			return nil, fmt.Errorf("freeze window %q is not START/END, two RFC 3339 times with START before END; rebuild the hook with a valid main.freezeWindows", w)
		}
		ws = append(ws, window{start, end})
	}
	return ws, nil
}

type document struct {
	Cluster *struct {
		Tags json.RawMessage `json:"tags"`
	} `json:"cluster"`
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func judge(doc []byte) (f findings) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return findings{Error: "reading the input document: " + err.Error()}
	}
	now := time.Now().UTC()
	for _, w := range windows {
		span := w.start.Format(time.RFC3339) + " to " + w.end.Format(time.RFC3339)
		switch {
		case !now.Before(w.start) && now.Before(w.end):
			f.Violations = append(f.Violations, finding{
				Code:        "FREEZE-WINDOW-001",
				Field:       "request",
				Message:     "a change freeze is in effect from " + span + "; converting a cluster to encryption restarts it and cannot be undone",
				Expected:    "a time outside " + span,
				Actual:      now.Format(time.RFC3339),
				Remediation: "make the change after " + w.end.Format(time.RFC3339) + "; if it cannot wait, get an exception from the change board",
			})
		case now.Before(w.start) && w.start.Sub(now) <= warnAhead:
			f.Warnings = append(f.Warnings, finding{
				Code:        "FREEZE-WINDOW-002",
				Field:       "request",
				Message:     "a change freeze starts at " + w.start.Format(time.RFC3339) + " (" + span + ")",
				Remediation: "finish the conversion, and its restart, before the freeze starts, or plan it for after " + w.end.Format(time.RFC3339),
			})
		}
	}
	f.Violations = append(f.Violations, judgeTags(d)...)
	return f
}

// judgeTags refuses a cluster tagged change-freeze=true, and one whose tags it cannot read: a freeze it
// cannot rule out is a freeze. A cluster without tags (no "tags" member, or null) has none.
func judgeTags(d document) []finding {
	if d.Cluster == nil {
		return []finding{{
			Code:        "FREEZE-TAG-002",
			Field:       "cluster",
			Message:     "the cluster's facts are unknown, so a change freeze on it cannot be ruled out",
			Remediation: "give the cluster's facts, with its tags, in the input document",
		}}
	}
	var tags []tag
	if len(d.Cluster.Tags) > 0 {
		if err := json.Unmarshal(d.Cluster.Tags, &tags); err != nil {
			return []finding{{
				Code:        "FREEZE-TAG-002",
				Field:       "cluster.tags",
				Message:     "the cluster's tags are not a list of {key, value} strings, so a change freeze on it cannot be ruled out",
				Expected:    `[{"key": "...", "value": "..."}, ...]`,
				Actual:      truncate(string(d.Cluster.Tags), 100),
				Remediation: "give the cluster's tags as the DWS API lists them",
			}}
		}
	}
	for _, t := range tags {
		if t.Key == "change-freeze" && strings.EqualFold(strings.TrimSpace(t.Value), "true") {
			return []finding{{
				Code:        "FREEZE-TAG-001",
				Field:       "cluster.tags",
				Message:     "the cluster is tagged change-freeze=" + t.Value + ": its owners have frozen changes to it",
				Expected:    "no tag change-freeze=true",
				Actual:      "change-freeze=" + t.Value,
				Remediation: "ask the cluster's owners to lift the freeze (remove the tag change-freeze or set it to false), then retry",
			}}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
