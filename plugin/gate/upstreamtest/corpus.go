package upstreamtest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/policy"
)

// The calls of the corpus: the API page's example project, cluster and key, a second project and a second
// key. The corpus expects the test's policy data to classify RegulatedProject as a regulated tenant (see
// Policy) and to leave DefaultProject unclassified, and the facts to describe Key only (see Facts).
const (
	RegulatedProject = "89cd04f168b84af6be287f71730fdb4b"
	DefaultProject   = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	Cluster          = "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	Key              = "0f3196c8-5c23-469f-84da-92ecd2499dce"
	KeyName          = "KMS-1abd-1016"
	// OtherKey is a well-formed KMS key ID that the facts do not describe: a call with it is refused (the
	// key is not the one checked), whatever the tenant.
	OtherKey = "5d0b3b1e-7c2a-4e8f-9b6d-3a1c2e4f6a8b"
)

// Facts are static facts, the same for every call: the API page's example cluster, all good, the key Key
// enabled, and the tenant class "default" (which the policy's data overrides for RegulatedProject).
func Facts() facts.Provider {
	return facts.Func(func(context.Context, facts.Request) (*facts.Facts, error) {
		return &facts.Facts{
			Cluster: &policy.Cluster{Version: "8.1.3.310", GuestAgentVersion: "8.3.0.200", Status: "AVAILABLE",
				TaskStatus: policy.String(""), Encrypted: policy.Bool(false), DRRelationship: policy.Bool(false)},
			Key:    &policy.Key{KeyID: Key, KeyState: "2"},
			Tenant: &policy.Tenant{Class: "default"},
		}, nil
	})
}

// Policy is the default policy with the override the corpus expects: the compliance team's data classifies
// RegulatedProject as "regulated".
func Policy() (*policy.Policy, error) {
	dir, err := os.MkdirTemp("", "precheck-upstreamtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data := `{"precheck": {"config": {"tenants": {"by_project": {"` + RegulatedProject + `": "regulated"}}}}}`
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o644); err != nil {
		return nil, err
	}
	return policy.LoadWithOverrides(dir)
}

// Field is a header field as written on the wire.
type Field struct{ Name, Value string }

// Case is one request of the corpus.
type Case struct {
	Name   string // unique, "<class>/<what>/<payload>"
	Class  string // case, duplicate, separator, utf8, number, depth, trailing, charset, content-encoding, path, method, override, rewrite, cl0, upgrade, opaque
	Method string
	// Target is the request-target exactly as it goes on the request line.
	Target string
	Header []Field
	Body   []byte
	// Opaque asks NewRequest for a URL whose Path does not show the target: the target goes in URL.Opaque,
	// which net/http writes on the request line as it is, and Path is "/". Only an http.RoundTripper sees
	// such a request; on the wire it is the same as without.
	Opaque bool
	// Tunnel is what the client sends on the connection once the server has answered 101 Switching
	// Protocols (Do and Exchange send it).
	Tunnel []byte
}

// Do sends the case through rt to base ("http://host:port") under ctx and returns the answer: its status
// and body, or status 0 and the error. On a 101 Switching Protocols answer it writes the Tunnel into the
// connection (the answer's body, as net/http gives it) and closes it.
func (c Case) Do(ctx context.Context, rt http.RoundTripper, base string) (int, []byte) {
	req, err := c.NewRequest(base)
	if err != nil {
		return 0, []byte(err.Error())
	}
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if w, ok := resp.Body.(io.Writer); ok && c.Tunnel != nil {
			w.Write(c.Tunnel)
		}
		return resp.StatusCode, nil
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// Raw is the request as bytes on the wire, for a raw client: the request line, Host, the fields in order,
// Content-Length when there is a body (unless the fields give framing), the body.
func (c Case) Raw(host string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", c.Method, c.Target, host)
	framed := false
	for _, f := range c.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", f.Name, f.Value)
		framed = framed || strings.EqualFold(f.Name, "Content-Length") || strings.EqualFold(f.Name, "Transfer-Encoding")
	}
	if c.Body != nil && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.Body))
	}
	b.WriteString("\r\n")
	b.Write(c.Body)
	return b.Bytes()
}

// NewRequest is the request as a Go client sends it to base ("http://host:port"): the URL parsed from base
// and the target, so that its Path and RawPath put exactly the target on the request line (URL.Opaque
// carries a target that no parsed URL would reproduce, and Opaque cases).
func (c Case) NewRequest(base string) (*http.Request, error) {
	var body *bytes.Reader
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	newReq := func(u string) (*http.Request, error) {
		if body == nil {
			return http.NewRequest(c.Method, u, nil)
		}
		return http.NewRequest(c.Method, u, body)
	}
	var req *http.Request
	var err error
	if !c.Opaque && strings.HasPrefix(c.Target, "/") {
		req, err = newReq(base + c.Target)
		if err == nil && req.URL.RequestURI() != c.Target {
			req = nil
		}
	}
	if req == nil {
		if req, err = newReq(base + "/"); err != nil {
			return nil, err
		}
		req.URL.Opaque = c.Target
		if strings.HasPrefix(c.Target, "//") {
			return nil, fmt.Errorf("upstreamtest: the target %q cannot be sent by net/http", c.Target)
		}
	}
	for _, f := range c.Header {
		if strings.EqualFold(f.Name, "Host") {
			req.Host = f.Value
			continue
		}
		req.Header.Add(f.Name, f.Value)
	}
	return req, nil
}

// HeaderLines are the case's fields as "Name: value" lines, for a fuzz test's string argument.
func (c Case) HeaderLines() string {
	var b strings.Builder
	for _, f := range c.Header {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	return b.String()
}

// ParseHeaderLines is the inverse of HeaderLines; a line without a colon is skipped.
func ParseHeaderLines(s string) []Field {
	var out []Field
	for _, line := range strings.Split(s, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok {
			out = append(out, Field{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
	}
	return out
}

// call is one encrypt call of the corpus, and (for a refused one) the member that makes it refused.
type call struct {
	project, alg, key string
	field             string // "crypt_algorithm" or "master_key_id": where it differs from the allowed call
	why               string
}

func allowed(project string) call {
	if project == RegulatedProject {
		return call{project: project, alg: "SMcompatible", key: Key}
	}
	return call{project: project, alg: "generalCipher", key: Key}
}

// refusedCalls are the calls the policy refuses, each only by one member: for the regulated tenant the
// international algorithm (refused once data classifies the tenant), and for either tenant a key the facts
// do not describe.
var refusedCalls = []call{
	{project: RegulatedProject, alg: "generalCipher", key: Key, field: "crypt_algorithm", why: "regulated-generalCipher"},
	{project: RegulatedProject, alg: "SMcompatible", key: OtherKey, field: "master_key_id", why: "regulated-otherkey"},
	{project: DefaultProject, alg: "generalCipher", key: OtherKey, field: "master_key_id", why: "default-otherkey"},
}

func (c call) value(field string) string {
	if field == "crypt_algorithm" {
		return c.alg
	}
	return c.key
}

func member(name, value string) string { return `"` + name + `":"` + value + `"` }

// members are the call's encrypt members, optionally with the hidden member inserted before or after the
// member it shadows.
func (c call) members() []string {
	return []string{member("crypt_algorithm", c.alg), member("master_key_id", c.key), member("master_key_name", KeyName)}
}

func withMember(ms []string, shadowed, extra string, before bool) []string {
	out := []string{}
	for _, m := range ms {
		isShadowed := strings.HasPrefix(m, `"`+shadowed+`"`)
		if isShadowed && before {
			out = append(out, extra)
		}
		out = append(out, m)
		if isShadowed && !before {
			out = append(out, extra)
		}
	}
	return out
}

func object(ms ...string) string { return "{" + strings.Join(ms, ",") + "}" }

func bodyOf(c call) string { return object(`"encrypt":` + object(c.members()...)) }

func encryptPath(project string) string {
	return "/v2/" + project + "/clusters/" + Cluster + "/encrypt"
}

var jsonUTF8 = []Field{{"Content-Type", "application/json;charset=UTF-8"}}

func post(class, name string, project string, body string) Case {
	return Case{Name: class + "/" + name, Class: class, Method: http.MethodPost, Target: encryptPath(project), Header: jsonUTF8, Body: []byte(body)}
}

func order(before bool) string {
	if before {
		return "before"
	}
	return "after"
}

// Corpus returns the requests of the differential and fuzz tests, in a fixed order. Every refused call in it
// is refused by exactly one member, which the case hides from some reading of the request; a gate that
// forwards any of them lets a refused call through to some upstream.
func Corpus() []Case {
	var cs []Case
	cs = append(cs, bodyCases()...)
	cs = append(cs, encodingCases()...)
	cs = append(cs, pathCases()...)
	cs = append(cs, methodCases()...)
	cs = append(cs, smuggleCases()...)
	cs = append(cs, upgradeCases()...)
	return cs
}

// bodyCases hide a refused value behind the allowed one: another letter case of a member name, the same
// name twice (also written with escapes), the name without its separators, a second "encrypt" object.
func bodyCases() []Case {
	names := map[string][]struct{ name, class string }{
		"crypt_algorithm": {
			{"Crypt_Algorithm", "case"}, {"CRYPT_ALGORITHM", "case"}, {`crypt_\u0041lgorithm`, "case"},
			{"crypt_algorithm", "duplicate"}, {`crypt_\u0061lgorithm`, "duplicate"},
			{"cryptAlgorithm", "separator"}, {"CRYPT-ALGORITHM", "separator"}, {"cryptalgorithm", "separator"},
		},
		"master_key_id": {
			{"MASTER_KEY_ID", "case"}, {"Master_Key_Id", "case"},
			{`master_\u212aey_id`, "case"}, {"master_\u212aey_id", "case"}, // Kelvin sign, escaped and raw
			{`ma\u017fter_key_id`, "case"}, {"ma\u017fter_key_id", "case"}, // long s, escaped and raw
			{"master_key_id", "duplicate"}, {`master_key_\u0069d`, "duplicate"},
			{"masterKeyId", "separator"}, {"master-key-id", "separator"}, {"MasterKeyID", "separator"},
		},
	}
	var cs []Case
	turn := map[string]int{}
	for _, field := range []string{"crypt_algorithm", "master_key_id"} {
		var calls []call // the refused calls that differ in this field, taking turns
		for _, r := range refusedCalls {
			if r.field == field {
				calls = append(calls, r)
			}
		}
		for _, n := range names[field] {
			for _, before := range []bool{false, true} {
				if before && n.class != "duplicate" {
					continue // no reader lets the first of two names that differ in case win
				}
				r := calls[turn[field]%len(calls)]
				turn[field]++
				vis := allowed(r.project)
				body := object(`"encrypt":` + object(withMember(vis.members(), r.field, member(n.name, r.value(r.field)), before)...))
				cs = append(cs, post(n.class, fmt.Sprintf("%s=%s/%s/%s", r.field, strconv.QuoteToASCII(n.name), order(before), r.why), r.project, body))
			}
		}
	}
	for _, r := range refusedCalls {
		vis := allowed(r.project)
		for _, n := range []struct{ name, class string }{{"ENCRYPT", "case"}, {"encrypt", "duplicate"}, {`\u0065ncrypt`, "duplicate"}} {
			for _, partial := range []bool{false, true} {
				hidden := object(r.members()...)
				what := "whole"
				if partial { // encoding/json merges a second object into the first
					hidden, what = object(member(r.field, r.value(r.field))), "only-"+r.field
				}
				for _, before := range []bool{false, true} {
					if before && (partial || n.class != "duplicate") {
						continue // read first, a part of the call is no call; and no reader lets "ENCRYPT" win first
					}
					ms := []string{`"encrypt":` + object(vis.members()...), `"` + n.name + `":` + hidden}
					if before {
						ms[0], ms[1] = ms[1], ms[0]
					}
					cs = append(cs, post(n.class, fmt.Sprintf("encrypt=%s/%s/%s/%s", strconv.QuoteToASCII(n.name), what, order(before), r.why), r.project, object(ms...)))
				}
			}
		}
	}
	return cs
}

// encodingCases are bodies that a strict reader refuses and a lenient one reads: invalid UTF-8 and lone
// surrogates, numbers out of range, deep nesting, data after the value, declared charsets. The refused call
// takes turns among refusedCalls.
func encodingCases() []Case {
	var cs []Case
	turn := 0
	next := func() call { r := refusedCalls[turn%len(refusedCalls)]; turn++; return r }

	bad := []struct{ name, s string }{
		{"xff", "\xff"}, {"overlong", "\xc0\xaf"}, {"utf8-surrogate", "\xed\xa0\x80"},
		{"lone-high", `\ud800`}, {"lone-low", `\udc00`},
	}
	for _, b := range bad {
		r := next()
		cs = append(cs, post("utf8", b.name+"/in-master_key_name/"+r.why, r.project,
			object(`"encrypt":`+object(member("crypt_algorithm", r.alg), member("master_key_id", r.key), member("master_key_name", KeyName+b.s)))))
		r = next()
		cs = append(cs, post("utf8", b.name+"/in-unknown-name/"+r.why, r.project, object(`"encrypt":`+object(append(r.members(), member("x"+b.s, "y"))...))))
		r = next()
		cs = append(cs, post("utf8", b.name+"/top-level/"+r.why, r.project, object(`"encrypt":`+object(r.members()...), member("note", b.s))))
		if strings.HasPrefix(b.s, `\u`) {
			continue // an escape is text to every reader: no reader drops it from a name
		}
		r = next()
		vis := allowed(r.project)
		cs = append(cs, post("utf8", b.name+"/shadow-name/"+r.why, r.project,
			object(`"encrypt":`+object(withMember(vis.members(), r.field, member(r.field+b.s, r.value(r.field)), false)...))))
	}

	for _, n := range []string{"1e999999999", "-1e999999999", "1e-999999999", "123456789012345678901234567890123456789"} {
		r := next()
		cs = append(cs, post("number", n+"/top-level/"+r.why, r.project, object(`"encrypt":`+object(r.members()...), `"n":`+n)))
		r = next()
		cs = append(cs, post("number", n+"/in-encrypt/"+r.why, r.project, object(`"encrypt":`+object(append(r.members(), `"n":`+n)...))))
	}

	for _, depth := range []int{40, 5000} {
		for _, kind := range []string{"array", "object"} {
			var nest string
			if kind == "array" {
				nest = strings.Repeat("[", depth) + strings.Repeat("]", depth)
			} else {
				nest = strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
			}
			r := next()
			cs = append(cs, post("depth", fmt.Sprintf("%d-%s/top-level/%s", depth, kind, r.why), r.project, object(`"encrypt":`+object(r.members()...), `"deep":`+nest)))
			r = next()
			cs = append(cs, post("depth", fmt.Sprintf("%d-%s/in-encrypt/%s", depth, kind, r.why), r.project, object(`"encrypt":`+object(append(r.members(), `"deep":`+nest)...))))
		}
	}

	for _, t := range []struct{ name, s string }{{"object", `{"x":1}`}, {"word", " x"}, {"nul", "\x00"}, {"bracket", "]"}, {"comma", ",{}"}} {
		r := next()
		cs = append(cs, post("trailing", t.name+"/"+r.why, r.project, bodyOf(r)+t.s))
	}
	for _, sep := range []struct{ name, s string }{{"allowed-then-refused", ""}, {"allowed-newline-refused", "\r\n"}} {
		for _, r := range refusedCalls {
			cs = append(cs, post("trailing", sep.name+"/"+r.why, r.project, bodyOf(allowed(r.project))+sep.s+bodyOf(r)))
		}
	}

	charset := func(name, cs string, body []byte, r call) Case {
		return Case{Name: "charset/" + name + "/" + r.why, Class: "charset", Method: http.MethodPost, Target: encryptPath(r.project),
			Header: []Field{{"Content-Type", "application/json;charset=" + cs}}, Body: body}
	}
	for _, name := range []string{"Shift_JIS", "GBK", "ISO-8859-1"} {
		r := next()
		cs = append(cs, charset(name, name, []byte(bodyOf(r)), r))
	}
	for _, enc := range []struct {
		name string
		bom  bool
		be   bool
	}{{"UTF-16", true, false}, {"UTF-16LE", false, false}, {"UTF-16BE", false, true}} {
		r := next()
		cs = append(cs, charset(enc.name, enc.name, utf16Bytes(bodyOf(r), enc.bom, enc.be), r))
	}
	for _, declared := range []string{"UTF-8", ""} {
		r := next()
		c := charset("utf-8-bom/declared="+declared, declared, append([]byte("\xef\xbb\xbf"), bodyOf(r)...), r)
		if declared == "" {
			c.Header = []Field{{"Content-Type", "application/json"}}
		}
		cs = append(cs, c)
	}
	// In UTF-7, "+ACIALAAi-" is `","`: master_key_name's text, as UTF-7, closes the string and adds a member.
	for _, r := range refusedCalls {
		vis := allowed(r.project)
		hidden := KeyName + utf7(`","`) + r.field + utf7(`":"`) + r.value(r.field)
		body := object(`"encrypt":` + object(member("crypt_algorithm", vis.alg), member("master_key_id", vis.key), member("master_key_name", hidden)))
		cs = append(cs, charset("UTF-7-shadow", "UTF-7", []byte(body), r))
	}
	for _, enc := range []string{"gzip", "deflate"} {
		r := next()
		var b bytes.Buffer
		var w io.WriteCloser = gzip.NewWriter(&b)
		if enc == "deflate" {
			w = zlib.NewWriter(&b)
		}
		w.Write([]byte(bodyOf(r)))
		w.Close()
		cs = append(cs, Case{Name: "content-encoding/" + enc + "/" + r.why, Class: "content-encoding", Method: http.MethodPost, Target: encryptPath(r.project),
			Header: []Field{{"Content-Type", "application/json;charset=UTF-8"}, {"Content-Encoding", enc}}, Body: b.Bytes()})
	}
	return cs
}

func utf16Bytes(s string, bom, bigEndian bool) []byte {
	units := utf16.Encode([]rune(s))
	if bom {
		units = append([]uint16{0xFEFF}, units...)
	}
	out := make([]byte, 2*len(units))
	for i, u := range units {
		if bigEndian {
			binary.BigEndian.PutUint16(out[2*i:], u)
		} else {
			binary.LittleEndian.PutUint16(out[2*i:], u)
		}
	}
	return out
}

// utf7 encodes ASCII text as one UTF-7 base64 run.
func utf7(s string) string {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return "+" + strings.TrimRight(base64.StdEncoding.EncodeToString(b), "=") + "-"
}

// pathCases send a refused call to paths that some server routes to the encrypt call and a naive match
// does not; and allowed calls to paths that name another project to some server.
func pathCases() []Case {
	c := Cluster
	variants := []struct{ name, tmpl string }{
		{"slash-in-cluster-%2F", "/v2/{p}/clusters/{c}%2Fencrypt"},
		{"slash-in-cluster-%2f", "/v2/{p}/clusters/{c}%2fencrypt"},
		{"all-slashes-%2F", "/v2%2F{p}%2Fclusters%2F{c}%2Fencrypt"},
		{"slash-in-project-%2F", "/v2/{p}%2Fx/clusters/{c}/encrypt"},
		{"dotdot-%2F", "/v2/{p}/clusters/x%2F..%2F{c}/encrypt"},
		{"dotdot-%2e%2e", "/v2/{p}/clusters/{c}/x/%2e%2e/encrypt"},
		{"dotdot-%2E%2E", "/v2/{p}/clusters/{c}/x/%2E%2E/encrypt"},
		{"dot-%2e", "/v2/{p}/clusters/{c}/%2e/encrypt"},
		{"dotdot", "/v2/{p}/clusters/{c}/x/../encrypt"},
		{"dotdot-first", "/x/../v2/{p}/clusters/{c}/encrypt"},
		{"dot", "/v2/{p}/clusters/{c}/./encrypt"},
		{"dot-first", "/./v2/{p}/clusters/{c}/encrypt"},
		{"double-slash", "/v2/{p}/clusters/{c}//encrypt"},
		{"double-slash-first", "//v2/{p}/clusters/{c}/encrypt"},
		{"double-slash-trailing", "/v2/{p}/clusters/{c}/encrypt//"},
		{"jsessionid", "/v2/{p}/clusters/{c}/encrypt;jsessionid=1"},
		{"param-in-v2", "/v2;x=1/{p}/clusters/{c}/encrypt"},
		{"param-in-cluster", "/v2/{p}/clusters/{c};x/encrypt"},
		{"dotdot-semicolon", "/v2/{p}/clusters/{c}/x/..;/encrypt"},
		{"dotdot-semicolon-first", "/x/..;/v2/{p}/clusters/{c}/encrypt"},
		{"upper-V2", "/V2/{p}/clusters/{c}/encrypt"},
		{"upper-ENCRYPT", "/v2/{p}/clusters/{c}/ENCRYPT"},
		{"capital-Clusters", "/v2/{p}/Clusters/{c}/encrypt"},
		{"suffix-json", "/v2/{p}/clusters/{c}/encrypt.json"},
		{"suffix-xml", "/v2/{p}/clusters/{c}/encrypt.xml"},
		{"trailing-slash", "/v2/{p}/clusters/{c}/encrypt/"},
		{"encoded-letter", "/v2/{p}/clusters/{c}/%65ncrypt"},
		{"encoded-v2", "/%76%32/{p}/clusters/{c}/encrypt"},
		{"encoded-question-mark", "/v2/{p}/clusters/{c}/encrypt%3Fx=1"},
		{"encoded-hash", "/v2/{p}/clusters/{c}/encrypt%23x"},
		{"query", "/v2/{p}/clusters/{c}/encrypt?x=1"},
		{"absolute-form", "http://dws.test/v2/{p}/clusters/{c}/encrypt"},
		{"literal-hash", "/v2/{p}/clusters/{c}/encrypt#x"},
		{"backslash", `/v2\{p}\clusters\{c}\encrypt`},
		{"backslash-%5C", "/v2%5C{p}%5Cclusters%5C{c}%5Cencrypt"},
		{"backslash-literal-in-project", `/v2/{p}\x/clusters/{c}/encrypt`},
		{"percent-u", "/v2/{p}/clusters/{c}/%u0065ncrypt"},
		{"trailing-space-%20", "/v2/{p}/clusters/{c}/encrypt%20"},
		{"trailing-tab-%09", "/v2/{p}/clusters/{c}/encrypt%09"},
		{"space-in-clusters-%20", "/v2/{p}/clusters%20/{c}/encrypt"},
		{"space-before-v2-%20", "/%20v2/{p}/clusters/{c}/encrypt"},
		{"trailing-dot-clusters", "/v2/{p}/clusters./{c}/encrypt"},
		{"trailing-dot-v2", "/v2../{p}/clusters/{c}/encrypt"},
		{"trailing-dot-encrypt", "/v2/{p}/clusters/{c}/encrypt."},
		{"nul-%00", "/v2/{p}/clusters/{c}/encrypt%00"},
		{"nul-suffix-%00.json", "/v2/{p}/clusters/{c}/encrypt%00.json"},
		{"double-encoded-dotdot", "/v2/{p}/clusters/{c}/x/%252e%252e/encrypt"},
		{"double-encoded-letter", "/v2/{p}/clusters/{c}/%2565ncrypt"},
		{"double-encoded-slash", "/v2/{p}/clusters/{c}%252Fencrypt"},
	}
	var cs []Case
	for i, v := range variants {
		r := refusedCalls[i%len(refusedCalls)]
		target := strings.NewReplacer("{p}", r.project, "{c}", c).Replace(v.tmpl)
		cs = append(cs, Case{Name: "path/" + v.name + "/" + r.why, Class: "path", Method: http.MethodPost, Target: target, Header: jsonUTF8, Body: []byte(bodyOf(r))})
	}
	// The default tenant's allowed call on a path that names the regulated project to a server that decodes
	// %3F or %23 and cuts the path there.
	for _, sep := range []string{"%3F", "%23"} {
		target := encryptPath(RegulatedProject) + sep + encryptPath(DefaultProject)
		cs = append(cs, Case{Name: "path/id-swap-" + sep + "/regulated-generalCipher", Class: "path", Method: http.MethodPost, Target: target,
			Header: jsonUTF8, Body: []byte(bodyOf(allowed(DefaultProject)))})
	}
	// The default tenant's allowed call after the regulated project's path: a subtree router executes the
	// first call; a gate that reads the last one decides on the second.
	cs = append(cs, Case{Name: "path/second-call-after-the-first/regulated-generalCipher", Class: "path", Method: http.MethodPost,
		Target: encryptPath(RegulatedProject) + encryptPath(DefaultProject), Header: jsonUTF8, Body: []byte(bodyOf(allowed(DefaultProject)))})
	// What only a Go client can do: a URL whose Path says "/" while its Opaque puts the call on the wire.
	for _, r := range []call{refusedCalls[0], refusedCalls[2]} {
		cs = append(cs, Case{Name: "opaque/url-opaque/" + r.why, Class: "opaque", Method: http.MethodPost, Target: encryptPath(r.project),
			Header: jsonUTF8, Body: []byte(bodyOf(r)), Opaque: true})
	}
	return cs
}

// methodCases send a refused call with another method, or with a method-override or URL-rewrite header.
func methodCases() []Case {
	var cs []Case
	turn := 0
	for _, m := range []string{"post", "Post", "pOST", "PUT", "PATCH", "GET", "DELETE"} {
		r := refusedCalls[turn%len(refusedCalls)]
		turn++
		cs = append(cs, Case{Name: "method/" + m + "/" + r.why, Class: "method", Method: m, Target: encryptPath(r.project), Header: jsonUTF8, Body: []byte(bodyOf(r))})
	}
	for _, m := range []string{"GET", "PUT"} {
		for _, h := range []Field{{"X-HTTP-Method-Override", "POST"}, {"X-HTTP-Method", "POST"}, {"X-Method-Override", "post"}} {
			r := refusedCalls[turn%len(refusedCalls)]
			turn++
			cs = append(cs, Case{Name: "override/" + m + "+" + h.Name + "/" + r.why, Class: "override", Method: m, Target: encryptPath(r.project),
				Header: append([]Field{h}, jsonUTF8...), Body: []byte(bodyOf(r))})
		}
	}
	for _, h := range []string{"X-Original-URL", "X-Rewrite-URL"} {
		for _, r := range []call{refusedCalls[0], refusedCalls[2]} {
			cs = append(cs, Case{Name: "rewrite/" + h + "-on-another-path/" + r.why, Class: "rewrite", Method: http.MethodPost,
				Target: "/v2/" + r.project + "/clusters", Header: append([]Field{{h, encryptPath(r.project)}}, jsonUTF8...), Body: []byte(bodyOf(r))})
		}
		// The default tenant's allowed call, rewritten to the regulated project.
		cs = append(cs, Case{Name: "rewrite/" + h + "-id-swap/regulated-generalCipher", Class: "rewrite", Method: http.MethodPost,
			Target: encryptPath(DefaultProject), Header: append([]Field{{h, encryptPath(RegulatedProject)}}, jsonUTF8...), Body: []byte(bodyOf(allowed(DefaultProject)))})
	}
	return cs
}

// smuggleCases carry a complete refused encrypt call as the body of a request a naive server does not read
// the body of (CL.0): a GET, HEAD, OPTIONS, TRACE, a POST or DELETE to another path.
func smuggleCases() []Case {
	outer := []struct{ method, target string }{
		{"GET", "/v1.0/{p}/clusters/{c}"},
		{"GET", "/v2/{p}/clusters/{c}/encrypt"},
		{"HEAD", "/v2/{p}/clusters/{c}/encrypt"},
		{"OPTIONS", "/v2/{p}/clusters/{c}/encrypt"},
		{"TRACE", "/"},
		{"POST", "/v2/{p}/clusters"},
		{"DELETE", "/v1.0/{p}/clusters/{c}"},
	}
	var cs []Case
	for i, o := range outer {
		r := refusedCalls[i%len(refusedCalls)]
		inner := Case{Method: http.MethodPost, Target: encryptPath(r.project), Header: jsonUTF8, Body: []byte(bodyOf(r))}
		target := strings.NewReplacer("{p}", r.project, "{c}", Cluster).Replace(o.target)
		cs = append(cs, Case{Name: "cl0/" + o.method + " " + strings.ReplaceAll(o.target, "{c}", "{cluster}") + "/" + r.why, Class: "cl0",
			Method: o.method, Target: target, Header: []Field{{"Content-Type", "text/plain"}}, Body: inner.Raw("dws.test")})
	}
	return cs
}

// upgradeCases ask the upstream to switch protocols (h2c, WebSocket) and, once it has, send a refused call
// through the connection, which is then a tunnel nothing in front of the upstream reads: a GET of the
// cluster's details, and the default tenant's allowed encrypt call itself.
func upgradeCases() []Case {
	upgrades := []struct {
		name   string
		fields []Field
	}{
		{"h2c", []Field{{"Connection", "Upgrade, HTTP2-Settings"}, {"Upgrade", "h2c"}, {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}}},
		{"websocket", []Field{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}},
	}
	var cs []Case
	for i, u := range upgrades {
		r := refusedCalls[i%len(refusedCalls)]
		tunnel := Case{Method: http.MethodPost, Target: encryptPath(r.project), Header: append([]Field{{"Connection", "close"}}, jsonUTF8...), Body: []byte(bodyOf(r))}.Raw("dws.test")
		cs = append(cs, Case{Name: "upgrade/" + u.name + "-on-cluster-details/" + r.why, Class: "upgrade", Method: http.MethodGet,
			Target: "/v1.0/" + r.project + "/clusters/" + Cluster, Header: u.fields, Tunnel: tunnel})
	}
	r := refusedCalls[0]
	tunnel := Case{Method: http.MethodPost, Target: encryptPath(r.project), Header: append([]Field{{"Connection", "close"}}, jsonUTF8...), Body: []byte(bodyOf(r))}.Raw("dws.test")
	cs = append(cs, Case{Name: "upgrade/h2c-on-the-allowed-call/" + r.why, Class: "upgrade", Method: http.MethodPost, Target: encryptPath(DefaultProject),
		Header: append(append([]Field(nil), upgrades[0].fields...), jsonUTF8...), Body: []byte(bodyOf(allowed(DefaultProject))), Tunnel: tunnel})
	return cs
}

// Control is a request the gate must let through, so that a gate cannot pass the bypass tests by refusing
// everything.
type Control struct {
	Case
	// Encrypt: an allowed encrypt call, which the upstream must execute exactly once with the body
	// byte-identical. Otherwise a call that must reach the upstream once, untouched.
	Encrypt bool
}

// Controls are the allowed calls of both tenants (the default tenant's with the international algorithm,
// the regulated one's with SM4), a plain GET of the cluster's details and a DELETE with a body.
func Controls() []Control {
	detail := "/v1.0/" + DefaultProject + "/clusters/" + Cluster
	return []Control{
		{Case: post("control", "allowed/default-generalCipher", DefaultProject, bodyOf(allowed(DefaultProject))), Encrypt: true},
		{Case: post("control", "allowed/regulated-SMcompatible", RegulatedProject, bodyOf(allowed(RegulatedProject))), Encrypt: true},
		{Case: Case{Name: "control/get-cluster-details", Class: "control", Method: http.MethodGet, Target: detail}},
		{Case: Case{Name: "control/delete-with-body", Class: "control", Method: http.MethodDelete, Target: detail, Header: jsonUTF8,
			Body: []byte(`{"keep_last_manual_snapshot": 0}`)}},
	}
}

// Check says what is wrong, if anything, with what the upstream read for the control (got) and with the
// answer the client had (status and body).
func (c Control) Check(got []Request, status int, body []byte) error {
	var reached []Request
	for _, r := range got {
		if !r.Smuggled {
			reached = append(reached, r)
		}
	}
	if len(reached) != 1 || reached[0].Method != c.Method || reached[0].Target != c.Target {
		return fmt.Errorf("the client got %d %q; want the call to reach the upstream once as %s %s, it read %d: %v", status, body, c.Method, c.Target, len(reached), reached)
	}
	r := reached[0]
	if !c.Encrypt {
		if r.Executed() || r.ContentLength != int64(len(c.Body)) {
			return fmt.Errorf("the upstream read %v; want it passed through untouched (%d body bytes)", r, len(c.Body))
		}
		return nil
	}
	switch {
	case !r.Executed() || !bytes.Equal(r.Body, c.Body):
		return fmt.Errorf("the upstream read %v; want the allowed call executed with the body %q", r, c.Body)
	case len(got) != 1:
		return fmt.Errorf("the upstream read %d requests, want the one call: %v", len(got), got)
	case status != http.StatusOK || !bytes.Contains(body, []byte(`"job_id"`)):
		return fmt.Errorf("the client got %d %q; want the upstream's 200 with a job_id", status, body)
	}
	return nil
}
