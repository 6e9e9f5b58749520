package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"

	"github.com/precheck/precheck/policy"
)

// example is the README's example document.
func example(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile("../examples/inputs/allowed-api-example.json")
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// withBody is a document whose request.body is body.
func withBody(body string) string { return `{"request": {"body": ` + body + `}}` }

type refusal struct {
	name, doc string
	path      string // the InputError's Path
	msg       string // a part of its Msg
	line, col int
}

func TestReadDocumentRefuses(t *testing.T) {
	t.Parallel()
	deep := `{"request": {"body": ` + strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 42)
	many := `{"cluster": {"action_progress": {` + manyMembers(40) + `, "M7": "x"}}}`
	tests := []refusal{
		// one JSON value in UTF-8, an object, within the limits
		{"malformed", "{\n  \"key\": {,}\n}", "", "malformed JSON", 2, 11},
		{"a second value after the first", `{} {}`, "", "malformed JSON", 1, 4},
		{"trailing garbage", `{"key": {}} x`, "", "malformed JSON", 1, 13},
		{"not an object", `[{"key": {}}]`, "", "must be a JSON object", 0, 0},
		{"invalid UTF-8 in a member name", "{\"\xc3\": 1}", "", "not valid UTF-8", 1, 3},
		{"too deep", deep, "", "nested deeper than the limit of 32 levels", 1, 172},
		{"too big", `{"request": {"project_id": "` + strings.Repeat("a", 1<<20) + `"}}`, "", "over the limit of 1048576 bytes", 0, 0},

		// surrogate escapes that are not a high-low pair
		{"a lone high surrogate", `{"tenant": {"class": "\ud800"}}`, "tenant.class", `surrogate escape \ud800`, 1, 23},
		{"a lone low surrogate", `{"tenant": {"class": "ab\uDC00"}}`, "tenant.class", `surrogate escape \uDC00`, 1, 25},
		{"a low surrogate before a high one", `{"tenant": {"class": "\udc00\ud800"}}`, "tenant.class", `surrogate escape \udc00`, 1, 23},
		{"a high surrogate before a character", `{"tenant": {"class": "\ud800\u0041"}}`, "tenant.class", `surrogate escape \ud800`, 1, 23},
		{"two high surrogates", `{"tenant": {"class": "\ud83d\ud83d"}}`, "tenant.class", `surrogate escape \ud83d`, 1, 23},
		{"a high surrogate at the end of the string", `{"tenant": {"class": "x\ud800"}}`, "tenant.class", `surrogate escape \ud800`, 1, 24},
		{"a high surrogate after a pair", `{"tenant": {"class": "\ud83d\ude00\ud83d"}}`, "tenant.class", `surrogate escape \ud83d`, 1, 35},
		{"a lone surrogate in a member name", withBody(`{"\ud800": 1}`), "request.body.\ufffd", "the member name has the surrogate escape", 1, 24},
		{"a lone surrogate in a free value", `{"cluster": {"action_progress": {"a": "\udfff"}}}`, "cluster.action_progress.a", `surrogate escape \udfff`, 1, 40},
		{"a lone surrogate in an array", withBody(`{"x": ["ok", "\ud800"]}`), "request.body.x[1]", "surrogate escape", 1, 36},

		// numbers a 64-bit float cannot hold
		{"a number that overflows", `{"key": {"key_state": 1e999999999}}`, "key.key_state", "the number 1e999999999 is beyond the range of a 64-bit float", 1, 23},
		{"a negative number that overflows", withBody(`{"x": [1, 2, -1.5e400]}`), "request.body.x[2]", "the number -1.5e400 is beyond", 1, 35},

		// a member name twice in any object, exactly or by letter case
		{"a top-level member twice", `{"key": {}, "key": {}}`, "key", `member "key" appears twice at the top level`, 1, 13},
		{"encrypt twice", withBody(`{"encrypt": {}, "encrypt": {}}`), "request.body.encrypt", `member "encrypt" appears twice in request.body`, 1, 38},
		{"crypt_algorithm twice", withBody(`{"encrypt": {"crypt_algorithm": "generalCipher", "crypt_algorithm": "SMcompatible"}}`),
			"request.body.encrypt.crypt_algorithm", `member "crypt_algorithm" appears twice in request.body.encrypt`, 1, 71},
		{"crypt_algorithm by letter case", withBody(`{"encrypt": {"crypt_algorithm": "SMcompatible", "CRYPT_ALGORITHM": "generalCipher"}}`),
			"request.body.encrypt.CRYPT_ALGORITHM", `member "CRYPT_ALGORITHM" in request.body.encrypt is member "crypt_algorithm" again up to letter case`, 1, 70},
		{"the Kelvin sign folds to k", `{"key": {}, "\u212aey": {}}`, "\u212aey", `member "\u212aey" at the top level is member "key" again up to letter case`, 1, 13},
		{"the Kelvin sign unescaped", "{\"key\": {\"key_state\": \"2\", \"\u212aey_state\": \"3\"}}", "key.\u212aey_state", `member "\u212aey_state" in key is member "key_state"`, 1, 28},
		{"the long s folds to s", `{"cluster": {"status": "AVAILABLE", "\u017ftatus": "CREATING"}}`, "cluster.\u017ftatus", `member "\u017ftatus" in cluster is member "status"`, 1, 37},
		{"case twins in a free map", `{"cluster": {"action_progress": {"a": "1", "A": "2"}}}`, "cluster.action_progress.A", `member "A" in cluster.action_progress is member "a"`, 1, 44},
		{"twins in a free body member", withBody(`{"x": {"y": 1, "y": 2}}`), "request.body.x.y", `member "y" appears twice in request.body.x`, 1, 37},
		{"twins in a tag", `{"cluster": {"tags": [{"key": "a", "value": "b"}, {"key": "c", "KEY": "d"}]}}`, "cluster.tags[1].KEY", `member "KEY" in cluster.tags[1] is member "key"`, 1, 64},
		{"twins among many members", many, "cluster.action_progress.M7", `member "M7" in cluster.action_progress is member "m7"`, 1, strings.Index(many, `"M7"`) + 1},

		// a member precheck does not know, where precheck's types define the members
		{"unknown at the top level", `{"keyy": {}}`, "keyy", `unknown member "keyy" at the top level; did you mean "key"?`, 1, 2},
		{"a case variant at the top level", `{"Request": {}}`, "Request", `unknown member "Request" at the top level; did you mean "request"?`, 1, 2},
		{"nothing near at the top level", `{"input": {}}`, "input", `unknown member "input" at the top level (known: cluster, key, request, tenant)`, 1, 2},
		{"unknown in request", `{"request": {"projectid": "x"}}`, "request.projectid", `unknown member "projectid" in request; did you mean "project_id"?`, 1, 14},
		{"unknown in cluster", `{"cluster": {"versoin": "8.1.3.310"}}`, "cluster.versoin", `unknown member "versoin" in cluster; did you mean "version"?`, 1, 14},
		{"unknown in a tag", `{"cluster": {"tags": [{"key": "a", "value": "b"}, {"key": "a", "valeu": "b"}]}}`, "cluster.tags[1].valeu", `unknown member "valeu" in cluster.tags[1]; did you mean "value"?`, 1, 64},
		{"unknown in key", `{"key": {"key_sate": "2"}}`, "key.key_sate", `unknown member "key_sate" in key; did you mean "key_state"?`, 1, 10},
		{"unknown in tenant", `{"tenant": {"clas": "regulated"}}`, "tenant.clas", `unknown member "clas" in tenant; did you mean "class"?`, 1, 13},

		// in the API's body, a member that differs from one the API defines only by letter case
		{"Encrypt for encrypt", withBody(`{"Encrypt": {"crypt_algorithm": "SMcompatible"}}`), "request.body.Encrypt",
			`member "Encrypt" differs from the API's "encrypt" only by letter case; servers may read it as that member`, 1, 23},
		{"ENCRYPT among other members", withBody(`{"x": 1, "encrypts": 2, "ENCRYPT": 3}`), "request.body.ENCRYPT",
			`member "ENCRYPT" differs from the API's "encrypt"`, 1, 46},
		{"the long s in master_key_id", withBody(`{"encrypt": {"ma\u017fter_key_id": "x"}}`), "request.body.encrypt.ma\u017fter_key_id",
			`member "ma\u017fter_key_id" differs from the API's "master_key_id"`, 1, 35},
		{"Crypt_Algorithm for crypt_algorithm", withBody(`{"encrypt": {"Crypt_Algorithm": "SMcompatible"}}`), "request.body.encrypt.Crypt_Algorithm",
			`member "Crypt_Algorithm" differs from the API's "crypt_algorithm" only by letter case; servers may read it as that member`, 1, 35},
		{"the Kelvin sign in master_key_id", withBody(`{"encrypt": {"master_\u212aey_id": "0f3196c8-5c23-469f-84da-92ecd2499dce"}}`),
			"request.body.encrypt.master_\u212aey_id", `member "master_\u212aey_id" differs from the API's "master_key_id"`, 1, 35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := policy.ReadDocument([]byte(tt.doc), policy.DefaultLimits)
			checkRefusal(t, tt, d, err)
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"m` + string(rune('0'+i%10)) + strings.Repeat("x", i/10) + `": "v"`)
	}
	return b.String()
}

func checkRefusal(t *testing.T, tt refusal, d *policy.Document, err error) {
	t.Helper()
	var inErr *policy.InputError
	if !errors.As(err, &inErr) {
		t.Fatalf("got %v, error %v; want an InputError", d, err)
	}
	if inErr.Path != tt.path {
		t.Errorf("path %q, want %q (%v)", inErr.Path, tt.path, err)
	}
	if !strings.Contains(inErr.Msg, tt.msg) {
		t.Errorf("message %q does not say %q", inErr.Msg, tt.msg)
	}
	if inErr.Line != tt.line || inErr.Column != tt.col {
		t.Errorf("at %d:%d, want %d:%d (%v)", inErr.Line, inErr.Column, tt.line, tt.col, err)
	}
}

func TestReadDocumentAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc string }{
		{"the README's example", string(example(t))},
		{"an empty document", `{}`},
		{"empty facts", `{"request": {}, "cluster": {}, "key": {}, "tenant": {}}`},
		{"empty objects everywhere", `{"request": {"body": {"encrypt": {}}}, "cluster": {"action_progress": {}, "tags": [{}]}}`},
		{"action_progress members", `{"cluster": {"action_progress": {"RESTARTING": "50%", "restart_progress": "", "ſcale": "x"}}}`},
		{"a cluster that is not an object", `{"cluster": "97cbaab3", "key": [1, 2], "tenant": null}`},
		{"tags that are not an array of objects", `{"cluster": {"tags": {"kee": 1}}}`},
		{"tags that are strings", `{"cluster": {"tags": ["env=prod"]}}`},
		{"a member the API does not define", withBody(`{"encrypt": {"crypt_algorithim": "SMcompatible"}, "dry_run": true}`)},
		{"members in a body that is not an object", withBody(`[{"Encrypt": 1}]`)},
		{"members in an encrypt that is not an object", withBody(`{"encrypt": [{"Crypt_Algorithm": 1}]}`)},
		{"case variants below encrypt's members", withBody(`{"encrypt": {"master_key_id": {"A": 1, "b": 2}}}`)},
		{"a surrogate pair", `{"tenant": {"class": "\ud83d\ude00 \uD83D\uDE00"}}`},
		{"an escaped backslash before u", `{"tenant": {"class": "\\ud800 \\\\udc00"}}`},
		{"U+FFFD itself", `{"tenant": {"class": "\ufffd �"}}`},
		{"the largest and smallest floats", withBody(`[1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 1e-400, 123456789012345678901234567890]`)},
		{"the same name in sibling objects", `{"cluster": {"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "1"}]}}`},
		{"whitespace around the document", " \n\t{}\r\n "},
		{"many distinct members", `{"cluster": {"action_progress": {` + manyMembers(200) + `}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := policy.ReadDocument([]byte(tt.doc), policy.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if string(d.JSON()) != tt.doc {
				t.Errorf("JSON() = %s, want the text read", d.JSON())
			}
			if _, err := d.Value(); err != nil {
				t.Errorf("Value: %v", err)
			}
		})
	}
}

// TestKnownMembersComeFromTheTypes: every member Input marshals is one the strict document knows, so a
// field added to input.go is known without a second list to update.
func TestKnownMembersComeFromTheTypes(t *testing.T) {
	t.Parallel()
	in := &policy.Input{
		Request: policy.Request{ProjectID: "p", ClusterID: "c", Body: json.RawMessage(`{"encrypt": {"crypt_algorithm": "SMcompatible"}}`)},
		Cluster: &policy.Cluster{Version: "v", GuestAgentVersion: "g", Status: "s", SubStatus: "s", TaskStatus: policy.String(""),
			ActionProgress: map[string]string{"a": "b"}, Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false),
			EnterpriseProjectID: "0", Tags: []policy.Tag{{Key: "k", Value: "v"}}},
		Key:    &policy.Key{KeyID: "k", KeyState: "2", KeySpec: "AES_256"},
		Tenant: &policy.Tenant{Class: "default"},
	}
	doc, err := policy.NewDocument(in, policy.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	// Every field is set, so that a field added to a type and not to this test shows here.
	var m map[string]map[string]any
	if err := json.Unmarshal(doc.JSON(), &m); err != nil {
		t.Fatal(err)
	}
	for member, typ := range map[string]reflect.Type{"request": reflect.TypeFor[policy.Request](), "cluster": reflect.TypeFor[policy.Cluster](),
		"key": reflect.TypeFor[policy.Key](), "tenant": reflect.TypeFor[policy.Tenant]()} {
		if len(m[member]) != typ.NumField() {
			t.Errorf("%s has %d members set, %s %d fields", member, len(m[member]), typ.Name(), typ.NumField())
		}
	}
}

// TestEncryptBodyIsTheSDKs: the body's member names are the official SDK's (EncryptClusterReq,
// EncryptCluster), the names the servers read.
func TestEncryptBodyIsTheSDKs(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]reflect.Type{
		{reflect.TypeFor[policy.EncryptBody](), reflect.TypeFor[model.EncryptClusterReq]()},
		{reflect.TypeFor[policy.Encrypt](), reflect.TypeFor[model.EncryptCluster]()},
	} {
		ours, theirs := slices.Sorted(keys(jsonNames(pair[0]))), slices.Sorted(keys(jsonNames(pair[1])))
		if !slices.Equal(ours, theirs) {
			t.Errorf("%s has members %q, the SDK's %s %q", pair[0].Name(), ours, pair[1].Name(), theirs)
		}
	}
	if ours, theirs := reflect.TypeFor[policy.EncryptBody]().Field(0).Type.Elem(), reflect.TypeFor[model.EncryptClusterReq]().Field(0).Type.Elem(); ours.Name() != "Encrypt" || theirs.Name() != "EncryptCluster" {
		t.Errorf("EncryptBody.Encrypt is a %s, the SDK's a %s", ours, theirs)
	}
}

// jsonNames maps the JSON member names of a struct type to its fields' names.
func jsonNames(t reflect.Type) map[string]string {
	names := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = f.Name
		}
	}
	return names
}

func keys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestReadEnvelope(t *testing.T) {
	t.Parallel()
	doc := example(t)
	envelope := append(append([]byte(`{"input": `), doc...), '}')
	for name, data := range map[string][]byte{"a document": doc, "an envelope": envelope} {
		t.Run(name, func(t *testing.T) {
			d, err := policy.ReadEnvelope(data, policy.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(d.JSON())) != strings.TrimSpace(string(doc)) {
				t.Errorf("JSON() = %s, want the document", d.JSON())
			}
		})
	}
	atMaxDepth := strings.Repeat(`{"request": {"body": `, 1) + strings.Repeat(`[`, 30) + strings.Repeat(`]`, 30) + `}}`
	if _, err := policy.ReadEnvelope([]byte(`{"input": `+atMaxDepth+`}`), policy.DefaultLimits); err != nil {
		t.Errorf("a document at the depth limit in an envelope: %v", err)
	}

	tests := []refusal{
		{"unknown member inside", `{"input": {"keyy": {}}}`, "input.keyy", `unknown member "keyy" in input; did you mean "key"?`, 1, 12},
		{"a case variant of an API member inside", "{\n\"input\": " + withBody(`{"Encrypt": {}}`) + "}", "input.request.body.Encrypt", `differs from the API's "encrypt"`, 2, 32},
		{"too deep inside", `{"input": ` + strings.Repeat(`[`, 32) + strings.Repeat(`]`, 32) + `}`, "", "must be a JSON object", 0, 0},
		{"too deep inside an object", `{"input": {"request": {"body": ` + strings.Repeat(`[`, 31) + strings.Repeat(`]`, 31) + `}}}`, "", "nested deeper than the limit of 32 levels", 1, 62},
		{"input twice", `{"input": {}, "input": {}}`, "input", `member "input" appears twice at the top level`, 1, 15},
		{"input by letter case", `{"input": {}, "INPUT": {}}`, "INPUT", `member "INPUT" at the top level is member "input" again`, 1, 15},
		{"a lone surrogate in the envelope", `{"input": {}, "x\udc00": 1}`, "x\ufffd", "surrogate escape", 1, 17},
		{"a number the envelope overflows", `{"input": {}, "x": 1e400}`, "x", "beyond the range", 1, 20},
		{"input beside another member", `{"input": {}, "key": {}}`, "input", `unknown member "input" at the top level`, 1, 2},
		{"Input is no envelope", `{"Input": {}}`, "Input", `unknown member "Input" at the top level`, 1, 2},
		{"an input that is not an object", `{"input": "x"}`, "", "must be a JSON object", 0, 0},
		{"malformed", `{"input": {}`, "", "malformed JSON", 1, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := policy.ReadEnvelope([]byte(tt.doc), policy.DefaultLimits)
			checkRefusal(t, tt, d, err)
		})
	}
}

func TestNewDocumentReadsTheBody(t *testing.T) {
	t.Parallel()
	tests := []refusal{
		{"a member twice by case", `{"encrypt": {"crypt_algorithm": "SMcompatible", "Crypt_Algorithm": "generalCipher"}}`,
			"request.body.encrypt.Crypt_Algorithm", `is member "crypt_algorithm" again up to letter case`, 0, 0},
		{"a case variant of encrypt", `{"ENCRYPT": {}}`, "request.body.ENCRYPT", `differs from the API's "encrypt"`, 0, 0},
		{"a lone surrogate", `{"encrypt": {"master_key_name": "\ud800"}}`, "request.body.encrypt.master_key_name", "surrogate escape", 0, 0},
		{"nested 5000 deep", strings.Repeat("[", 5000) + strings.Repeat("]", 5000), "", "nested deeper than the limit of 32 levels", 0, 0},
		{"not JSON", `{"encrypt":`, "request.body", "unexpected end of JSON input", 0, 0},
		{"not UTF-8", "\"\xff\"", "", "not valid UTF-8", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := policy.NewDocument(&policy.Input{Request: policy.Request{Body: json.RawMessage(tt.doc)}}, policy.DefaultLimits)
			checkRefusal(t, tt, d, err)
		})
	}
	if _, err := policy.NewDocument(&policy.Input{Request: policy.Request{Body: json.RawMessage(`{"encrypt": {}}`)}}, policy.Limits{MaxBytes: 16, MaxDepth: 32}); err == nil {
		t.Error("a document over MaxBytes was read")
	}
}

func TestCheckDocumentRefusesAnUnreadDocument(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for name, doc := range map[string]*policy.Document{"zero": {}, "nil": nil} {
		if d, err := e.CheckDocument(context.Background(), doc); !errors.Is(err, policy.ErrUnreadDocument) {
			t.Errorf("%s document: decision %+v, error %v; want ErrUnreadDocument", name, d, err)
		}
	}
}

func TestInputErrorNamesThePath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  policy.InputError
		want string
	}{
		{policy.InputError{Line: 3, Column: 5, Path: "cluster.versoin", Msg: "unknown"}, "input: line 3, column 5: cluster.versoin: unknown"},
		{policy.InputError{Path: "request.body", Msg: "broken"}, "input: request.body: broken"},
		{policy.InputError{Line: 1, Column: 2, Msg: "malformed JSON"}, "input: line 1, column 2: malformed JSON"},
		{policy.InputError{Msg: "too big"}, "input: too big"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// A document two servers could read differently is refused before any policy sees it: here encoding/json
// would take the second crypt_algorithm and a first-wins reader the first.
func ExampleReadDocument() {
	_, err := policy.ReadDocument([]byte(`{"request": {"body": {"encrypt": {
		"crypt_algorithm": "SMcompatible",
		"CRYPT_ALGORITHM": "generalCipher"}}}}`), policy.DefaultLimits)
	var inErr *policy.InputError
	if errors.As(err, &inErr) {
		fmt.Println(inErr.Line, inErr.Column, inErr.Path)
	}
	_, err = policy.ReadDocument([]byte(`{"tenant": {"clas": "regulated"}}`), policy.DefaultLimits)
	fmt.Println(err)
	// Output:
	// 3 3 request.body.encrypt.CRYPT_ALGORITHM
	// input: line 1, column 13: tenant.clas: unknown member "clas" in tenant; did you mean "class"?
}

// ReadEnvelope takes a document either bare or in OPA's envelope, as OPA's own REST API sends it.
func ExampleReadEnvelope() {
	bare, _ := policy.ReadEnvelope([]byte(`{"tenant": {"class": "regulated"}}`), policy.DefaultLimits)
	wrapped, _ := policy.ReadEnvelope([]byte(`{"input": {"tenant": {"class": "regulated"}}}`), policy.DefaultLimits)
	fmt.Println(string(bare.JSON()) == string(wrapped.JSON()))
	// Output:
	// true
}

func BenchmarkReadDocument(b *testing.B) {
	doc := example(b)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.ReadDocument(doc, policy.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewDocument reads an Input built in Go, as the gate and fleet make one for every call.
func BenchmarkNewDocument(b *testing.B) {
	var in policy.Input
	if err := json.Unmarshal(example(b), &in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.NewDocument(&in, policy.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
