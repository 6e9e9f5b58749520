package facts

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/precheck/precheck/policy"
)

// Entry is one cluster of an inventory: what is known about it, and (for `precheck fleet`) the conversion
// intended for it.
type Entry struct {
	ProjectID string          `json:"project_id"`
	ClusterID string          `json:"cluster_id"`
	Cluster   *policy.Cluster `json:"cluster,omitempty"`
	Key       *policy.Key     `json:"key,omitempty"`
	Tenant    *policy.Tenant  `json:"tenant,omitempty"`
	// Encrypt is the body's "encrypt" object of the intended call, for a readiness report; the gate takes
	// the request from the call itself.
	Encrypt *Encrypt `json:"encrypt,omitempty"`
}

// Encrypt is the "encrypt" object of the call's body: the API's one shape, shared with the policy.
type Encrypt = policy.Encrypt

// Inventory is a list of clusters and their facts, read from JSON or CSV. As a Provider it answers the facts
// of the cluster a call names; a cluster it does not list has no known facts (and the policy refuses it).
type Inventory struct {
	Entries   []Entry
	byCluster map[string]int // entry index by cluster ID in lower case
}

// ReadInventory reads an inventory file: a JSON array of entries, or CSV (by the .csv extension).
func ReadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var inv *Inventory
	if strings.EqualFold(path[max(0, len(path)-4):], ".csv") {
		inv, err = ParseCSV(bytes.NewReader(data))
	} else {
		inv, err = ParseJSON(data)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// ParseJSON reads a JSON array of entries. Members an entry may not have (a misspelt fact would otherwise be
// silently unknown) and members of the wrong type are errors naming the entry, and so is what the input
// document refuses too (policy.CheckObject): a member given twice, exactly or up to letter case, which
// encoding/json would read as the last of them ("encrypted": false, "Encrypted": true is encrypted).
func ParseJSON(data []byte) (*Inventory, error) {
	if !json.Valid(data) {
		var v any // for encoding/json's word on where and what
		return nil, fmt.Errorf("not a JSON array of clusters: %w", json.Unmarshal(data, &v))
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not a JSON array of clusters: not valid UTF-8")
	}
	outer := json.NewDecoder(bytes.NewReader(data))
	if t, err := outer.Token(); err != nil || t != json.Delim('[') {
		return nil, errors.New("not a JSON array of clusters")
	}
	inv := &Inventory{}
	for i := 0; outer.More(); i++ {
		var r json.RawMessage
		if err := outer.Decode(&r); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if r[0] != '{' {
			return nil, fmt.Errorf("entry %d: not an object", i+1)
		}
		end := int(outer.InputOffset())
		if err := policy.CheckObject(data, end-len(r), end, policy.DefaultLimits.MaxDepth, ""); err != nil {
			return nil, fmt.Errorf("entry %d: %s", i+1, strings.TrimPrefix(err.Error(), "input: "))
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if err := inv.add(e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
	}
	return inv, nil
}

// csvColumns are the columns a CSV inventory may have, each setting one member of an entry. A column that is
// absent leaves its member unknown; an empty cell is an empty string (task_status "" is an idle cluster), or
// unknown for a boolean. Empty key and tenant cells give no key or tenant at all: a row without key facts
// is then checked as such (a warning), not as a key whose facts are missing.
var csvColumns = map[string]func(e *Entry, cell string) error{
	"project_id":            func(e *Entry, s string) error { e.ProjectID = s; return nil },
	"cluster_id":            func(e *Entry, s string) error { e.ClusterID = s; return nil },
	"version":               func(e *Entry, s string) error { cluster(e).Version = s; return nil },
	"guest_agent_version":   func(e *Entry, s string) error { cluster(e).GuestAgentVersion = s; return nil },
	"status":                func(e *Entry, s string) error { cluster(e).Status = s; return nil },
	"sub_status":            func(e *Entry, s string) error { cluster(e).SubStatus = s; return nil },
	"task_status":           func(e *Entry, s string) error { cluster(e).TaskStatus = policy.String(s); return nil },
	"encrypted":             func(e *Entry, s string) error { return setBool(&cluster(e).Encrypted, s) },
	"dr_relationship":       func(e *Entry, s string) error { return setBool(&cluster(e).DRRelationship, s) },
	"enterprise_project_id": func(e *Entry, s string) error { cluster(e).EnterpriseProjectID = s; return nil },
	"tags":                  func(e *Entry, s string) error { return setTags(cluster(e), s) },
	"key_id":                func(e *Entry, s string) error { ifGiven(s, func() { key(e).KeyID = s }); return nil },
	"key_state":             func(e *Entry, s string) error { ifGiven(s, func() { key(e).KeyState = s }); return nil },
	"key_spec":              func(e *Entry, s string) error { ifGiven(s, func() { key(e).KeySpec = s }); return nil },
	"tenant_class":          func(e *Entry, s string) error { ifGiven(s, func() { e.Tenant = &policy.Tenant{Class: s} }); return nil },
	"crypt_algorithm":       func(e *Entry, s string) error { encrypt(e).CryptAlgorithm = s; return nil },
	"master_key_id":         func(e *Entry, s string) error { encrypt(e).MasterKeyID = s; return nil },
	"master_key_name":       func(e *Entry, s string) error { encrypt(e).MasterKeyName = s; return nil },
}

// CSVColumns lists the columns a CSV inventory may have.
func CSVColumns() []string {
	cols := make([]string, 0, len(csvColumns))
	for c := range csvColumns {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return cols
}

// ParseCSV reads a CSV inventory whose first row names the columns (see CSVColumns); tags are written
// "key=value;key=value".
func ParseCSV(r io.Reader) (*Inventory, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the header row: %w", err)
	}
	setters := make([]func(*Entry, string) error, len(header))
	column := map[string]int{} // each column's index, to refuse one given twice
	for i, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		set, ok := csvColumns[name]
		if !ok {
			return nil, fmt.Errorf("header: unknown column %q (known: %s)", name, strings.Join(CSVColumns(), ", "))
		}
		if j, twice := column[name]; twice {
			return nil, fmt.Errorf("header: column %q is given twice (columns %d and %d): a row would say two things", name, j+1, i+1)
		}
		column[name] = i
		setters[i] = set
	}
	inv := &Inventory{}
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err // csv.ParseError names the line and column
		}
		line, _ := cr.FieldPos(0)
		var e Entry
		for i, cell := range row {
			if err := setters[i](&e, cell); err != nil {
				return nil, fmt.Errorf("line %d, column %s: %w", line, header[i], err)
			}
		}
		if err := inv.add(e); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	return inv, nil
}

func ifGiven(s string, set func()) {
	if s != "" {
		set()
	}
}

func cluster(e *Entry) *policy.Cluster {
	if e.Cluster == nil {
		e.Cluster = &policy.Cluster{}
	}
	return e.Cluster
}

func key(e *Entry) *policy.Key {
	if e.Key == nil {
		e.Key = &policy.Key{}
	}
	return e.Key
}

func encrypt(e *Entry) *Encrypt {
	if e.Encrypt == nil {
		e.Encrypt = &Encrypt{}
	}
	return e.Encrypt
}

func setBool(dst **bool, s string) error {
	if s == "" {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*dst = &b
	return nil
}

func setTags(c *policy.Cluster, s string) error {
	for _, pair := range strings.Split(s, ";") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("tag %q is not key=value", pair)
		}
		c.Tags = append(c.Tags, policy.Tag{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
	}
	return nil
}

func (inv *Inventory) add(e Entry) error {
	if e.ClusterID == "" {
		return errors.New("no cluster_id")
	}
	if inv.byCluster == nil {
		inv.byCluster = map[string]int{}
	}
	// By folded case: two entries that differ only so are one cluster to whoever reads the list.
	id := strings.ToLower(e.ClusterID)
	if j, dup := inv.byCluster[id]; dup {
		return fmt.Errorf("cluster %s is listed twice (also entry %d, %s)", e.ClusterID, j+1, inv.Entries[j].ClusterID)
	}
	inv.byCluster[id] = len(inv.Entries)
	inv.Entries = append(inv.Entries, e)
	return nil
}

// Facts answers the facts of the cluster r names. A cluster the inventory does not list, or lists under
// another project, has no known facts.
func (inv *Inventory) Facts(_ context.Context, r Request) (*Facts, error) {
	e := inv.Entry(r.ProjectID, r.ClusterID)
	if e == nil {
		return &Facts{}, nil
	}
	return &Facts{Cluster: e.Cluster, Key: e.Key, Tenant: e.Tenant}, nil
}

// Entry returns the inventory's entry for the cluster, or nil when it lists none, or lists it under another
// project (an entry that names no project is any project's).
func (inv *Inventory) Entry(projectID, clusterID string) *Entry {
	if inv == nil {
		return nil
	}
	i, ok := inv.byCluster[strings.ToLower(clusterID)]
	if !ok {
		return nil
	}
	if e := &inv.Entries[i]; e.ClusterID == clusterID && (e.ProjectID == "" || e.ProjectID == projectID) {
		return e
	}
	return nil
}
