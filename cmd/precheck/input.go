package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// readLimited reads the file (or stdin for "-"), refusing more than limit bytes without reading them all.
// It returns the data and the name to give the source in messages.
func readLimited(e *env, path string, limit int) ([]byte, string, error) {
	var r io.Reader = e.stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, path, &policy.InputError{Msg: err.Error()}
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, name, &policy.InputError{Msg: fmt.Sprintf("reading %s: %v", name, err)}
	}
	if len(data) > limit {
		return nil, name, &policy.InputError{Msg: fmt.Sprintf("%s is over the limit of %d bytes", name, limit)}
	}
	return data, name, nil
}

// isJSONText reports whether data is meant as JSON: its first character opens an object or an array. Any
// other text is read as YAML (of which JSON is a subset), so that malformed JSON is reported as JSON.
func isJSONText(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(data) > 0 && (data[0] == '{' || data[0] == '[')
}

// documentJSON returns an input document's text as JSON: JSON as it is, YAML converted. The YAML reader
// is strict (a key given twice is an error, as it is in JSON); policy.ReadDocument then reads the JSON as
// it reads any document. The returned yamlSource is the YAML text, for positions in later errors.
func documentJSON(data []byte, name string) (doc []byte, yamlSource []byte, err error) {
	if isJSONText(data) {
		return data, nil, nil
	}
	out, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, &policy.InputError{Msg: fmt.Sprintf("%s: %s", name, yamlMessage(err))}
	}
	return out, data, nil
}

// yamlMessage is the YAML library's error without the layers of its conversion ("error converting YAML
// to JSON: yaml: line 3: ..." says "line 3: ...").
func yamlMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: ")
	return strings.TrimPrefix(msg, "yaml: ")
}

// readDocumentText reads an input document from JSON or YAML text. An error about a member of a YAML
// document names the member's line and column in the YAML, not in the JSON it was converted to.
func readDocumentText(data []byte, name string, limits policy.Limits) (*policy.Document, []byte, error) {
	text, source, err := documentJSON(data, name)
	if err != nil {
		return nil, nil, err
	}
	doc, err := policy.ReadDocument(text, limits)
	if err != nil && source != nil {
		err = atYAMLPosition(err, source)
	}
	return doc, text, err
}

// atYAMLPosition moves an InputError's position from the converted JSON to the member's place in the YAML
// source, or drops it when the member cannot be found there.
func atYAMLPosition(err error, source []byte) error {
	var in *policy.InputError
	if !errors.As(err, &in) {
		return err
	}
	in.Line, in.Column = 0, 0
	if in.Path != "" {
		if n := yamlNodeAt(source, in.Path); n != nil {
			in.Line, in.Column = n.Line, n.Column
		}
	}
	return err
}

var pathStep = regexp.MustCompile(`[^.\[\]]+|\[\d+\]`)

// yamlNodeAt finds the node of a dotted path (cluster.tags[0].key) in YAML text: the key of a member, the
// element of an array.
func yamlNodeAt(source []byte, path string) *yamlv3.Node {
	var root yamlv3.Node
	if yamlv3.Unmarshal(source, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	n := root.Content[0]
	var at *yamlv3.Node
	for _, step := range pathStep.FindAllString(path, -1) {
		if i, ok := strings.CutPrefix(step, "["); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(i, "]"))
			if n.Kind != yamlv3.SequenceNode || k >= len(n.Content) {
				return at
			}
			n = n.Content[k]
			at = n
			continue
		}
		if n.Kind != yamlv3.MappingNode {
			return at
		}
		found := false
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == step {
				at, n, found = n.Content[j], n.Content[j+1], true
				break
			}
		}
		if !found {
			return at
		}
	}
	return at
}

// Inventory formats, as --inventory-format names them.
var inventoryFormats = []string{"csv", "json", "yaml"}

// inventory is an inventory as read for a command: its entries, and where each begins in its text.
type inventory struct {
	*facts.Inventory
	// source is the inventory's file as given ("" for stdin); lines holds each entry's first line in it.
	source string
	lines  []int
}

// readInventory reads an inventory file, or stdin for "-": a JSON array of entries, a YAML sequence of
// them, or CSV. The format is --inventory-format's, else the file's extension's (.json, .yaml, .yml,
// .csv), else the content's: JSON when it opens an array or object, YAML when it is a YAML sequence or
// mapping, CSV otherwise.
func readInventory(e *env, path, format string) (*inventory, error) {
	var data []byte
	var err error
	name := path
	if path == "-" {
		name = "stdin"
		data, err = io.ReadAll(e.stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if format == "" {
		format = inventoryFormat(path, data)
	}
	inv := &inventory{}
	if path != "-" {
		inv.source = path
	}
	switch format {
	case "json":
		inv.Inventory, err = facts.ParseJSON(data)
		if err == nil {
			inv.lines = jsonEntryLines(data)
		}
	case "yaml":
		inv.Inventory, inv.lines, err = parseYAMLInventory(data)
	case "csv":
		inv.Inventory, err = facts.ParseCSV(bytes.NewReader(data))
		if err == nil {
			inv.lines = csvRowLines(data)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", name, err)
	}
	return inv, nil
}

func inventoryFormat(path string, data []byte) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "json"
	case ".yaml", ".yml":
		return "yaml"
	case ".csv":
		return "csv"
	}
	if isJSONText(data) {
		return "json"
	}
	// A CSV file is YAML too, mostly: one long plain scalar. Only a sequence or a mapping is meant as YAML.
	var n yamlv3.Node
	if yamlv3.Unmarshal(data, &n) == nil && len(n.Content) > 0 &&
		(n.Content[0].Kind == yamlv3.SequenceNode || n.Content[0].Kind == yamlv3.MappingNode) {
		return "yaml"
	}
	return "csv"
}

// parseYAMLInventory reads a YAML sequence of entries as facts.ParseJSON reads a JSON array (the same
// strictness), with each entry's line, and puts the line into errors about an entry.
func parseYAMLInventory(data []byte) (*facts.Inventory, []int, error) {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(data, &root); err != nil {
		return nil, nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yamlv3.SequenceNode {
		return nil, nil, errors.New("not a YAML sequence of clusters")
	}
	var lines []int
	for _, item := range root.Content[0].Content {
		lines = append(lines, item.Line)
	}
	text, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, errors.New(yamlMessage(err))
	}
	inv, err := facts.ParseJSON(text)
	if err != nil {
		// facts names the entry ("entry 2: ..."); the YAML's line says where it is.
		var n int
		if _, scanErr := fmt.Sscanf(err.Error(), "entry %d:", &n); scanErr == nil && n >= 1 && n <= len(lines) {
			err = fmt.Errorf("line %d: %w", lines[n-1], err)
		}
		return nil, nil, err
	}
	return inv, lines, nil
}

// jsonEntryLines is the line each element of a JSON array starts on.
func jsonEntryLines(data []byte) []int {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // [
		return nil
	}
	var lines []int
	for dec.More() {
		at := int(dec.InputOffset())
		// The offset is after the last token; the element starts after the comma and blanks.
		for at < len(data) && strings.IndexByte(" \t\r\n,", data[at]) >= 0 {
			at++
		}
		lines = append(lines, 1+bytes.Count(data[:at], []byte("\n")))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return lines
		}
	}
	return lines
}

// csvRowLines is the line each data row of a CSV inventory starts on, read as facts.ParseCSV reads it.
func csvRowLines(data []byte) []int {
	r := csv.NewReader(bytes.NewReader(data))
	r.TrimLeadingSpace = true
	if _, err := r.Read(); err != nil { // the header
		return nil
	}
	var lines []int
	for {
		if _, err := r.Read(); err != nil {
			return lines
		}
		line, _ := r.FieldPos(0)
		lines = append(lines, line)
	}
}
