package gate

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The gate must see the guarded call wherever an upstream would route one, and an upstream may be any web
// server, API gateway or framework in front of DWS. Each normalises a path its own way: one decodes %2F
// into a slash and another keeps it inside a segment, one resolves "..;" and another treats it as a name,
// one strips ";jsessionid" or ".json", one ignores case. So the gate reads the path every way such a server
// might, and recognises the call if any reading is it. It decides on the call only when every reading
// agrees on it, IDs included: otherwise the policy would judge one cluster while the server encrypts
// another, and the gate refuses instead.

// maxDecodes is how many times a path is percent-decoded, as servers that decode at more than one layer
// do. A path that still changes after that is encoded more deeply than any client needs, and unreadable.
const maxDecodes = 4

// route is the gate's reading of a request's path.
type route struct {
	// guarded: some reading of the path is the encrypt call.
	guarded bool
	// projectID and clusterID are the call's IDs, the same in every reading, as decoded (letter case
	// kept, so that the policy refuses a malformed ID by name).
	projectID, clusterID string
	// unreadable says why the path, which may be the encrypt call, cannot be read unambiguously; the gate
	// refuses it. "" when the readings agree.
	unreadable string
}

// call is one reading's verdict: the encrypt call with these IDs, or (ok false) some other call.
type call struct {
	ok                   bool
	projectID, clusterID string
	// prefixOnly: the path goes on after ".../encrypt", which only a server routing by prefix reads as the
	// call; no reading decides on it.
	prefixOnly bool
}

// readRoute reads the path of u as it goes on the wire. An absolute request target (an Opaque
// "//host/path", which net/http writes as "http://host/path", or an Opaque "http://host/path") is read
// twice: as the path after the host, as servers that parse it do, and whole, split at its slashes, as
// servers that take it for a path do. The gate decides only when the two readings agree.
func readRoute(u *url.URL) route {
	if target := u.RequestURI(); splitsRequestLine(target) {
		return route{unreadable: fmt.Sprintf("the request target %q holds a space or a control character, which splits or ends the request line where servers differ", target)}
	}
	afterHost, whole, absolute := absoluteTarget(u.Opaque)
	if !absolute {
		return readPath(wirePath(u))
	}
	a, w := readPath(afterHost), readPath(whole)
	switch {
	case a.unreadable != "":
		return a
	case w.unreadable != "":
		return w
	case a.call() != w.call():
		return route{guarded: true, unreadable: disagreement(u.Opaque, a.call(), w.call())}
	}
	return a
}

// call is the reading of a readable route as a call.
func (r route) call() call {
	return call{ok: r.guarded, projectID: r.projectID, clusterID: r.clusterID}
}

// splitsRequestLine says whether target, as net/http writes it on the request line, holds a byte that
// ends it for some servers and not for others: a space (net/http lets one through in an Opaque or a raw
// query; the JDK's server takes the target to the second space and ignores the rest), a tab or another
// control character.
func splitsRequestLine(target string) bool {
	for _, c := range []byte(target) {
		if c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// absoluteTarget splits an Opaque that makes an absolute request target into the path after its host and
// the whole target without the scheme's "//"; ok is false for any other Opaque.
func absoluteTarget(opaque string) (afterHost, whole string, ok bool) {
	rest, ok := strings.CutPrefix(opaque, "//")
	if !ok {
		i := strings.Index(opaque, "://")
		if i <= 0 || strings.ContainsAny(opaque[:i], "/\\?#") {
			return "", "", false
		}
		rest = opaque[i+3:]
	}
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		afterHost = rest[j:]
	}
	return afterHost, rest, true
}

func readPath(raw string) route {
	if plain(raw) { // what nearly every client sends
		return readPlain(raw)
	}
	return readEveryWay(raw)
}

// readPlain reads a plain path (see plain), which every reading of readEveryWay reads the same way.
func readPlain(raw string) route {
	c := match(collapse(strings.Split(raw, "/")))
	switch {
	case c.prefixOnly:
		return route{guarded: true, unreadable: prefixProblem(raw)}
	case bindsEmptyID([]string{raw}):
		return route{guarded: true, unreadable: emptyIDProblem(raw)}
	}
	return route{guarded: c.ok, projectID: c.projectID, clusterID: c.clusterID}
}

// bindsEmptyID says whether a router that keeps empty segments, which every reading here merges as most
// servers do, reads one of the forms as the encrypt call with an empty ID ("/v2//clusters/{c}/encrypt").
func bindsEmptyID(forms []string) bool {
	for _, form := range forms {
		if c := match(strings.Split(form, "/")); c.ok && (c.projectID == "" || c.clusterID == "") {
			return true
		}
	}
	return false
}

func emptyIDProblem(raw string) string {
	return fmt.Sprintf("the path %q is the encrypt call with an empty ID to a server that keeps empty segments", raw)
}

func prefixProblem(raw string) string {
	return fmt.Sprintf("the path %q goes on after the encrypt call's path, which a server that routes by prefix takes for the call", raw)
}

func readEveryWay(raw string) route {
	forms, trouble := decodings(raw)
	var first call
	var r route
	for i, segs := range readings(forms) {
		c := match(segs)
		if i == 0 {
			first = c
		}
		r.guarded = r.guarded || c.ok
		switch {
		case r.unreadable != "":
		case c.prefixOnly:
			r.unreadable = prefixProblem(raw)
		case c != first:
			r.unreadable = disagreement(raw, first, c)
		}
	}
	if trouble != "" && (r.guarded || mayBeEncrypt(forms)) {
		r.unreadable = fmt.Sprintf("the path %q %s", raw, trouble)
	}
	if r.unreadable == "" && bindsEmptyID(forms) {
		r.guarded, r.unreadable = true, emptyIDProblem(raw)
	}
	if r.guarded && r.unreadable == "" {
		r.projectID, r.clusterID = first.projectID, first.clusterID
	}
	return r
}

// wirePath is the path as the transport writes it into the request line, for a target that is not
// absolute (see absoluteTarget): the Opaque form when there is one, and the escaped path otherwise.
func wirePath(u *url.URL) string {
	if u.Opaque != "" {
		return u.Opaque
	}
	return u.EscapedPath()
}

// plain says whether no server could read raw any other way than by splitting it at its slashes: it has
// no escape, no parameter, no query or fragment mark (an Opaque URL may), no backslash, no dot segment,
// nothing but printable ASCII.
func plain(raw string) bool {
	for _, c := range []byte(raw) {
		if c <= ' ' || c >= 0x7f || c == '%' || c == ';' || c == '?' || c == '#' || c == '\\' {
			return false
		}
	}
	for seg := range strings.SplitSeq(raw, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// decodings are the forms of the path a server may split into segments: the raw path, whose segments are
// decoded one by one (forms[0]), then the whole path decoded once, twice, ... until it no longer changes.
// trouble says what no reading can settle: an invalid escape, a path still encoded after maxDecodes, a
// control character or invalid UTF-8 that servers truncate, trim or refuse each their own way.
func decodings(raw string) (forms []string, trouble string) {
	forms = []string{raw}
	p := raw
	for i := 0; ; i++ {
		d, bad := unescape(p)
		if bad {
			trouble = "holds an invalid percent-encoding"
		}
		if i > 0 && d == p {
			break
		}
		if i == maxDecodes {
			return forms, fmt.Sprintf("is still percent-encoded after %d decodings", maxDecodes)
		}
		forms = append(forms, d)
		p = d
	}
	if trouble == "" {
		trouble = oddCharacters(forms[len(forms)-1])
	}
	return forms, trouble
}

func oddCharacters(decoded string) string {
	if !utf8.ValidString(decoded) {
		return "decodes to invalid UTF-8"
	}
	for _, c := range []byte(decoded) {
		if c < 0x20 || c == 0x7f {
			return "decodes to a control character"
		}
	}
	return ""
}

// mayBeEncrypt is the test for a path the gate cannot read: if it might name the encrypt call at all, the
// gate refuses it rather than guess. A path still encoded might decode to anything; in the others,
// "encrypt" is looked for as lenient servers would see it: IIS's %uXXXX escapes decoded, control
// characters dropped.
func mayBeEncrypt(forms []string) bool {
	last := forms[len(forms)-1]
	if d, _ := unescape(last); d != last {
		return true
	}
	for _, f := range forms {
		if strings.Contains(strings.ToLower(dropControls(unescapeU(f))), "encrypt") {
			return true
		}
	}
	return false
}

// unescapeU decodes IIS's %uXXXX escapes, which no other server knows: so they are no reading of their
// own, only a reason to refuse a path that is unreadable anyway (an escape that is not %XX).
func unescapeU(s string) string {
	if !strings.Contains(s, "%u") && !strings.Contains(s, "%U") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]) {
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			b.WriteRune(r)
			i += 5
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func dropControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// unescape percent-decodes s. Unlike url.PathUnescape it decodes what it can and keeps an invalid escape as
// it is (bad true), as lenient servers do, so that the gate can still see what such a server would route.
func unescape(s string) (decoded string, bad bool) {
	if !strings.Contains(s, "%") {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		if s[i] == '%' {
			bad = true
		}
		b.WriteByte(s[i])
	}
	return b.String(), bad
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// readings are the segment lists servers may route the path by. From the raw form: split on '/', then each
// segment decoded (an encoded slash stays inside its segment). From each decoded form: the path ending at a
// '?' or '#' (a proxy that decodes and forwards makes them the query or fragment), then split. Each form is
// split twice, with a backslash as a slash (Windows servers, some proxies) and as a character of its
// segment, and each list is then normalised every way servers do (see normalisations).
func readings(forms []string) [][]string {
	var out [][]string
	for _, raw := range backslashes(forms[0]) {
		segs := strings.Split(raw, "/")
		for i, s := range segs {
			segs[i], _ = unescape(stripParams(s)) // a server that splits first takes ";params" off the raw segment
		}
		out = append(out, normalisations(segs)...)
	}
	for _, f := range forms[1:] {
		if i := strings.IndexAny(f, "?#"); i >= 0 {
			f = f[:i]
		}
		for _, g := range backslashes(f) {
			out = append(out, normalisations(strings.Split(g, "/"))...)
		}
	}
	return out
}

// backslashes are the two readings of a backslash in p: as a slash, and as itself.
func backslashes(p string) []string {
	if !strings.Contains(p, `\`) {
		return []string{p}
	}
	return []string{strings.ReplaceAll(p, `\`, "/"), p}
}

// normalisations are the ways servers clean up a path's segments: with ";params" stripped and duplicate
// slashes collapsed before dot segments are resolved (nginx's merge_slashes, Tomcat); with an empty segment
// counting as one, as RFC 3986 resolves dot segments; with dot segments resolved while "..;" is still a
// name (a proxy in front of Tomcat); and with no dot resolution at all.
func normalisations(segs []string) [][]string {
	stripped := make([]string, len(segs))
	for i, s := range segs {
		stripped[i] = stripParams(s)
	}
	return [][]string{
		resolveDots(collapse(stripped)),
		collapse(resolveDots(stripped)),
		collapse(mapSegments(resolveDots(segs), stripParams)),
		collapse(stripped),
	}
}

func stripParams(seg string) string {
	if i := strings.IndexByte(seg, ';'); i >= 0 {
		return seg[:i]
	}
	return seg
}

func mapSegments(segs []string, f func(string) string) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = f(s)
	}
	return out
}

// collapse drops empty segments: duplicate, leading and trailing slashes.
func collapse(segs []string) []string {
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// resolveDots removes "." segments and lets each ".." remove the segment before it.
func resolveDots(segs []string) []string {
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return out
}

// match reads segments as .../v2/{project_id}/clusters/{cluster_id}/encrypt after any prefix (an API
// gateway's, a version proxy's). The constant segments are compared as the most lenient servers compare
// them: without letter case, without the spaces some frameworks trim and the trailing dots IIS drops, and,
// in the last segment, without a format suffix ("encrypt.json") or whatever follows a ';', a '?' or a '#'
// decoded from an escape. A path that goes on after such an "encrypt" (.../encrypt/x) is the call too, as a
// front end that routes by prefix reads it: the gate refuses it, since no reading agrees on it.
//
// The first such run of segments decides: a path with a second one after it, such as
// /v2/{a}/clusters/{b}/encrypt/v2/{c}/clusters/{d}/encrypt, is the call on b to a server that routes by
// prefix, whatever comes after.
func match(segs []string) call {
	for i := 0; i+5 <= len(segs); i++ {
		last := segs[i+4]
		if j := strings.IndexAny(last, ".;?#"); j >= 0 {
			last = last[:j]
		}
		if !isName(last, "encrypt") || !isName(segs[i+2], "clusters") || !isName(segs[i], "v2") {
			continue
		}
		if i+5 < len(segs) {
			return call{ok: true, prefixOnly: true, projectID: segs[i+1], clusterID: segs[i+3]}
		}
		return call{ok: true, projectID: segs[i+1], clusterID: segs[i+3]}
	}
	return call{}
}

// isName says whether a lenient server would take seg for the constant segment name.
func isName(seg, name string) bool {
	seg = strings.TrimRight(strings.Trim(seg, " \t"), ". \t")
	return strings.EqualFold(seg, name)
}

func disagreement(raw string, a, b call) string {
	if !a.ok {
		a, b = b, a
	}
	if !b.ok {
		return fmt.Sprintf("the path %q is the encrypt call of cluster %q in project %q as some servers read it, and another call as others do", raw, a.clusterID, a.projectID)
	}
	return fmt.Sprintf("the path %q is the encrypt call of cluster %q in project %q as some servers read it, and of cluster %q in project %q as others do", raw, a.clusterID, a.projectID, b.clusterID, b.projectID)
}
