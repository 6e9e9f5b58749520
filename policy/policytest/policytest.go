// Package policytest reads the input documents the project keeps for its tests: the policy's corpus
// (policy/testdata/corpus/*.json, each {"input": document, "want": ...}) and the example inputs
// (examples/inputs/*.json, each a document). The engines' differential test, the fuzz seeds and the
// example hosts all decide on the same documents; this is the one place that knows where they are and how a
// corpus file is laid out. It imports nothing of precheck, so policy's own tests can use it too. WithoutRace
// runs a package's slowest single-goroutine tests in a binary built without the race detector, GoCommand
// runs the go command from a test, MachineCode keeps wazero's machine code across test runs, SyncBuffer
// is a log destination code under test writes from its goroutines, and Main is every package's TestMain.
//
//	docs, err := policytest.Documents("../..") // from two levels below the repository root
package policytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Document is one input document and where it came from, relative to the repository root.
type Document struct {
	Name string
	JSON []byte
}

// Corpus reads the policy's corpus below root (the repository root, as a path from the caller).
func Corpus(root string) ([]Document, error) {
	return read(root, "policy/testdata/corpus", func(name string, data []byte) ([]byte, error) {
		var c struct {
			Input json.RawMessage `json:"input"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if c.Input == nil {
			return nil, fmt.Errorf("%s: no input member", name)
		}
		return c.Input, nil
	})
}

// Examples reads the example inputs below root.
func Examples(root string) ([]Document, error) {
	return read(root, "examples/inputs", func(_ string, data []byte) ([]byte, error) { return data, nil })
}

// Documents is the examples and the corpus, in that order.
func Documents(root string) ([]Document, error) {
	examples, err := Examples(root)
	if err != nil {
		return nil, err
	}
	corpus, err := Corpus(root)
	if err != nil {
		return nil, err
	}
	return append(examples, corpus...), nil
}

// read returns the document in each *.json file of dir (below root), in the order of their names. A directory
// without any is an error: a test that finds nothing to decide on must not pass.
func read(root, dir string, document func(name string, data []byte) ([]byte, error)) ([]Document, error) {
	files, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no documents in %s", filepath.Join(root, dir))
	}
	docs := make([]Document, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		name := dir + "/" + filepath.Base(f)
		doc, err := document(name, data)
		if err != nil {
			return nil, err
		}
		docs = append(docs, Document{Name: name, JSON: doc})
	}
	return docs, nil
}
