package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/precheck/precheck/policy/policytest"
)

// FuzzASTValue: for every document ReadDocument accepts, the value built straight from the text is the one
// OPA's own route (encoding/json with numbers kept, then ast.InterfaceToValue) gives.
func FuzzASTValue(f *testing.F) {
	docs, err := policytest.Documents("..")
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range docs {
		f.Add(d.JSON)
	}
	f.Add([]byte(`{"request": {"body": {"a\u00e9\"b": [1.5e3, -0, true, null, {"x": "\ud83d\ude00\n"}]}}, "cluster": {"tags": []}}`))
	f.Add([]byte(` { "request" : { "project_id" : "p" , "cluster_id" : "c" } } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ReadDocument(data, DefaultLimits)
		if err != nil {
			return
		}
		got, err := astValue(doc.JSON())
		if err != nil {
			t.Fatalf("astValue: %v", err)
		}
		var x any
		if err := util.UnmarshalJSON(doc.JSON(), &x); err != nil {
			t.Fatal(err)
		}
		want, err := ast.InterfaceToValue(x)
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("got  %v\nwant %v", got, want)
		}
	})
}
