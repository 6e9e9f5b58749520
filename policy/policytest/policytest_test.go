package policytest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/precheck/precheck/policy/policytest"
)

func TestDocuments(t *testing.T) {
	docs, err := policytest.Documents("../..")
	if err != nil {
		t.Fatal(err)
	}
	var examples, corpus int
	for _, d := range docs {
		var x map[string]any
		if err := json.Unmarshal(d.JSON, &x); err != nil {
			t.Errorf("%s: not a JSON object (%v): %.60s", d.Name, err, d.JSON)
		}
		switch {
		case strings.HasPrefix(d.Name, "examples/inputs/"):
			examples++
		case strings.HasPrefix(d.Name, "policy/testdata/corpus/"):
			corpus++
			if _, ok := x["want"]; ok {
				t.Errorf("%s: the corpus file's want member was taken for the document", d.Name)
			}
		}
	}
	if examples == 0 || corpus == 0 || examples+corpus != len(docs) {
		t.Errorf("%d examples and %d corpus documents of %d", examples, corpus, len(docs))
	}
}

func TestNoDocumentsIsAnError(t *testing.T) {
	if _, err := policytest.Corpus(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no documents") {
		t.Errorf("err = %v", err)
	}
}

func ExampleExamples() {
	docs, err := policytest.Examples("../..")
	if err != nil {
		panic(err)
	}
	fmt.Println(docs[0].Name)
	// Output: examples/inputs/allowed-api-example.json
}
