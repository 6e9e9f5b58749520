package wasm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/precheck/precheck/policy"
)

// FuzzDecodeResult: the fast reader of the module's result set decodes what encoding/json decodes, or
// hands over to it; it never decodes differently.
func FuzzDecodeResult(f *testing.F) {
	for _, s := range []string{
		`[]`,
		`[{"result":{"allowed":true,"violations":[],"warnings":[{"code":"PRECHECK-OPS-001","field":"request","severity":"warn","message":"m \"q\" \u00e9","remediation":"r"}]}}]`,
		`[{"result":{"allowed":false,"error":{"status":409,"error_code":"C","error_msg":"x\\/y"},"violations":[{"code":"C","field":"f","severity":"deny","message":"m","expected":"e","actual":"a"}],"warnings":[]}}]`,
		`[{"result":{"Allowed":true,"violations":[],"warnings":[]}}]`,
		`[{"result":{"allowed":true,"allowed":false}}]`,
		`[{"result":null}]`,
		`[{"result":{"allowed":true,"error":{"status":4.09e2}}}]`,
		` [ { "result" : { "allowed" : true , "violations" : [ ] } } ] `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		r := newResultReader(out)
		fast, ok := r.resultSet()
		if !ok {
			return // decodeResult hands these to encoding/json
		}
		var rs []struct {
			Result *policy.Decision `json:"result"`
		}
		if err := json.Unmarshal(out, &rs); err != nil {
			t.Fatalf("the fast reader read %q, which encoding/json refuses: %v", out, err)
		}
		var want *policy.Decision
		if len(rs) > 0 {
			want = rs[0].Result
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%s\nfast %+v\njson %+v", out, fast, want)
		}
	})
}
