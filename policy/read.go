package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
)

// The reading of a document is the one every reader shares, or none: precheck decides on its own reading,
// the cloud acts on its own, and where the two could differ (a member given twice, a case variant of an API
// member, a lone surrogate, a number one reader overflows) the document is refused before any policy runs.

// shape is what precheck knows of a value, derived from the Go types of input.go so that the strict document
// has one source of truth. A nil *shape is a free value: anything goes below it but the generic checks.
type shape struct {
	members map[string]*shape // an object's members; nil when the value is not an object
	names   []string          // the members' names, sorted, for suggestions and case comparisons
	intern  map[string]string // each member's name to itself, so that a name read needs no new string
	elem    *shape            // an array's elements
	// caseOnly is the API's own body: a member it does not define is the policy's to judge (at a level a
	// compliance team may relax), but a case variant of one it defines is refused here, since servers that
	// fold case (as encoding/json does) would read it as that member.
	caseOnly bool
}

// documentShape is the input document: strict where precheck's types are, request.body as the API defines it.
var documentShape = sync.OnceValue(func() *shape {
	s := shapeOf(reflect.TypeFor[Input](), false)
	s.members["request"].members["body"] = shapeOf(reflect.TypeFor[EncryptBody](), true)
	return s
})

func shapeOf(t reflect.Type, caseOnly bool) *shape {
	switch t.Kind() {
	case reflect.Pointer:
		return shapeOf(t.Elem(), caseOnly)
	case reflect.Slice, reflect.Array:
		if e := shapeOf(t.Elem(), caseOnly); e != nil {
			return &shape{elem: e}
		}
	case reflect.Struct:
		s := &shape{members: map[string]*shape{}, intern: map[string]string{}, caseOnly: caseOnly}
		addMembers(s, t)
		slices.Sort(s.names)
		for _, n := range s.names {
			s.intern[n] = n
		}
		return s
	}
	return nil // scalars, json.RawMessage, maps (action_progress): free
}

// addMembers adds t's fields by their JSON names, as encoding/json would marshal them.
func addMembers(s *shape, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			addMembers(s, f.Type)
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.members[name] = shapeOf(f.Type, s.caseOnly)
		s.names = append(s.names, name)
	}
}

// reader reads one JSON value, data[start:end], on the way to a Document.
type reader struct {
	data   []byte
	start  int
	prefix string
	stack  []frame
	names  []string // the member names of the objects on the stack, each object's from its frame's names on

	projectID, clusterID string // request's, when strings (see identifier)
	masterKeyID          string // request.body.encrypt's, when a string

	// The top-level object's members, for ReadEnvelope.
	members              int
	first                string
	firstStart, firstEnd int
}

type frame struct {
	object    bool
	shape     *shape
	expectKey bool
	key       string            // the current member's name
	index     int               // the current element's index
	names     int               // where this object's names start in reader.names
	folded    map[string]string // this object's names by folded case, once there are too many to compare one by one
}

// foldedAfter is the member count past which names are compared by folded key rather than one by one:
// one by one is faster for the real document, and a map keeps a hostile one with many members linear.
const foldedAfter = 16

// readValue validates data[start:end], a JSON value inside data, which json.Valid and utf8.Valid accepted
// as a whole. root is what precheck knows of the value, prefix its path; positions are in data.
// slack is how many levels the value may nest beyond maxDepth: an envelope's own.
func readValue(data []byte, start, end, maxDepth, slack int, root *shape, prefix string) (*reader, error) {
	r := &reader{data: data, start: start, prefix: prefix, stack: make([]frame, 0, 8), names: make([]string, 0, 32)}
	first := bytes.TrimLeft(data[start:end], " \t\r\n")
	if len(first) == 0 || first[0] != '{' {
		return nil, &InputError{Msg: "the document must be a JSON object"}
	}
	if err := r.scan(end, maxDepth+slack, maxDepth, root); err != nil {
		return nil, err
	}
	return r, nil
}

// scan reads the value token by token in one pass, checking depth, every member name, string and number,
// and where root knows the members, that each one is known. The text is valid JSON (json.Valid accepted
// it), so the scan only tells tokens apart; it is ours, not encoding/json's Decoder.Token, because that
// decodes every scalar through reflection and costs ten times as much on the document of every decision.
func (r *reader) scan(end, depthLimit, maxDepth int, root *shape) error {
	data := r.data
	for i := r.start; i < end; {
		switch c := data[i]; c {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
		case '{', '[':
			if len(r.stack) >= depthLimit {
				line, col := position(data, int64(i)+1)
				return &InputError{Line: line, Column: col, Msg: fmt.Sprintf("nested deeper than the limit of %d levels", maxDepth)}
			}
			r.valueStarts(i)
			s := r.shapeOfNext(root)
			f := frame{object: c == '{', expectKey: c == '{', names: len(r.names)}
			if s != nil && (f.object && s.members != nil || !f.object && s.elem != nil) {
				f.shape = s
			}
			r.stack = append(r.stack, f)
			i++
		case '}', ']':
			i++
			r.pop(i)
		case '"':
			j, bad := stringEnd(data, i)
			if top := r.top(); top != nil && top.object && top.expectKey {
				if bad >= 0 {
					top.key = memberName(data[i:j]) // for the path: encoding/json's reading, U+FFFD for the escape
					return r.loneSurrogate(bad, "the member name", r.path(len(r.stack)))
				}
				if err := r.member(top, r.name(top, data[i:j]), i); err != nil {
					return err
				}
				top.expectKey = false
			} else {
				r.valueStarts(i)
				if bad >= 0 {
					return r.loneSurrogate(bad, "the string", r.path(len(r.stack)))
				}
				r.identifier(data[i:j])
				r.valueDone(j)
			}
			i = j
		default: // a number, true, false or null
			r.valueStarts(i)
			j := i + 1
			for j < end && !isDelimiter(data[j]) {
				j++
			}
			if c == '-' || c >= '0' && c <= '9' {
				if err := r.number(data[i:j], i); err != nil {
					return err
				}
			}
			r.valueDone(j)
			i = j
		}
	}
	return nil
}

func isDelimiter(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// stringEnd returns the offset just past the string that starts at data[i] (its opening quote), and the
// offset of its first surrogate escape that is not a high-low pair (-1 when none): encoding/json and OPA's
// parser replace such an escape with U+FFFD, other readers keep it, OPA's wasm parser aborts.
func stringEnd(data []byte, i int) (end, badEscape int) {
	badEscape = -1
	for j := i + 1; ; j++ {
		switch data[j] {
		case '"':
			return j + 1, badEscape
		case '\\':
			if data[j+1] != 'u' {
				j++
				continue
			}
			n, ok := surrogateEscape(data[j:])
			if !ok && badEscape < 0 {
				badEscape = j
			}
			j += n - 1
		}
	}
}

// surrogateEscape reads the \uXXXX escape at the start of s (valid JSON) and, for a high surrogate, the low
// one that must follow it. It returns how many bytes it read and whether they are a character.
func surrogateEscape(s []byte) (n int, ok bool) {
	r := hex4(s[2:6])
	switch {
	case !utf16.IsSurrogate(r):
		return 6, true
	case r >= 0xdc00: // a low surrogate with no high one before it
		return 6, false
	case len(s) >= 12 && s[6] == '\\' && s[7] == 'u' && utf16.DecodeRune(r, hex4(s[8:12])) != utf8.RuneError:
		return 12, true
	}
	return 6, false
}

func hex4(s []byte) rune {
	var b [2]byte
	hex.Decode(b[:], s) // valid JSON: four hex digits
	return rune(b[0])<<8 | rune(b[1])
}

// name is memberName(quoted) for a member of f, without a new string when f's shape knows the name: the
// strict document's names are nearly all known, and a string for each cost the reading an allocation a
// member.
func (r *reader) name(f *frame, quoted []byte) string {
	if f.shape != nil && bytes.IndexByte(quoted, '\\') < 0 {
		if n, ok := f.shape.intern[string(quoted[1:len(quoted)-1])]; ok {
			return n
		}
	}
	return memberName(quoted)
}

// memberName is the name a quoted member name stands for. Without escapes it is the text itself (valid
// UTF-8, checked); with them, encoding/json unquotes it (its surrogates were checked to be pairs).
func memberName(quoted []byte) string {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1])
	}
	var name string
	_ = json.Unmarshal(quoted, &name) // valid JSON string: cannot fail
	return name
}

// number refuses a number beyond the range of a 64-bit float, which readers overflow differently or
// refuse. Only a number with an exponent or over 308 digits can be; the rest are not parsed at all.
func (r *reader) number(text []byte, at int) error {
	if len(text) <= 308 && bytes.IndexAny(text, "eE") < 0 {
		return nil
	}
	if _, err := strconv.ParseFloat(string(text), 64); errors.Is(err, strconv.ErrRange) {
		return r.failAt(at, r.path(len(r.stack)), fmt.Sprintf("the number %s is beyond the range of a 64-bit float; readers overflow it differently or refuse it", abbreviate(string(text))))
	}
	return nil
}

func (r *reader) top() *frame {
	if len(r.stack) == 0 {
		return nil
	}
	return &r.stack[len(r.stack)-1]
}

// shapeOfNext is what precheck knows of the value that starts next: the root, a member's or an element's.
func (r *reader) shapeOfNext(root *shape) *shape {
	switch top := r.top(); {
	case top == nil:
		return root
	case top.shape == nil:
		return nil
	case top.object:
		return top.shape.members[top.key]
	default:
		return top.shape.elem
	}
}

// identifier keeps request.project_id, request.cluster_id and request.body.encrypt.master_key_id when
// they are strings (quoted, the string just read), for those who log a decision or gather the facts: they
// need not read the document again.
func (r *reader) identifier(quoted []byte) {
	s := r.stack
	if len(s) < 2 || !s[0].object || s[0].key != "request" || !s[1].object {
		return
	}
	switch {
	case len(s) == 2 && s[1].key == "project_id":
		r.projectID = memberName(quoted)
	case len(s) == 2 && s[1].key == "cluster_id":
		r.clusterID = memberName(quoted)
	case len(s) == 4 && s[1].key == "body" && s[2].object && s[2].key == "encrypt" && s[3].object && s[3].key == "master_key_id":
		r.masterKeyID = memberName(quoted)
	}
}

// valueStarts notes where the top-level object's first member's value starts, for ReadEnvelope.
func (r *reader) valueStarts(at int) {
	if len(r.stack) == 1 && r.members == 1 && r.firstStart == 0 {
		r.firstStart = at
	}
}

func (r *reader) loneSurrogate(at int, what, path string) error {
	esc := r.data[at : at+6]
	return r.failAt(at, path, fmt.Sprintf("%s has the surrogate escape %s, which is not half of a high-low pair; readers replace it, keep it or refuse it", what, esc))
}

// pop closes the innermost container, whose closing bracket ends at end.
func (r *reader) pop(end int) {
	f := &r.stack[len(r.stack)-1]
	if f.object {
		r.names = r.names[:f.names]
	}
	r.stack = r.stack[:len(r.stack)-1]
	if len(r.stack) > 0 {
		r.valueDone(end)
	}
}

// valueDone moves the innermost container past the value just read, which ended at end.
func (r *reader) valueDone(end int) {
	top := &r.stack[len(r.stack)-1]
	if top.object {
		top.expectKey = true
	} else {
		top.index++
	}
	if len(r.stack) == 1 && r.members == 1 && r.firstEnd == 0 {
		r.firstEnd = end
	}
}

// member checks a member name of the object f: never twice (exactly or by letter case) and, where the
// object's shape knows its members, known.
func (r *reader) member(f *frame, name string, at int) error {
	f.key = name
	path := func() string { return r.path(len(r.stack)) }
	if prev, dup := r.seen(f, name); dup {
		where := r.where()
		if prev == name {
			return r.failAt(at, path(), fmt.Sprintf("member %+q appears twice %s; readers disagree on which one counts", abbreviate(name), where))
		}
		return r.failAt(at, path(), fmt.Sprintf("member %+q %s is member %+q again up to letter case; readers that fold case (as Go's encoding/json does) disagree on which one counts", abbreviate(name), where, abbreviate(prev)))
	}
	if len(r.stack) == 1 {
		r.members++
		if r.members == 1 {
			r.first = name
		}
	}
	s := f.shape
	if s == nil {
		return nil
	}
	if _, known := s.members[name]; known {
		return nil
	}
	if s.caseOnly {
		for _, api := range s.names {
			if strings.EqualFold(api, name) {
				return r.failAt(at, path(), fmt.Sprintf("member %+q differs from the API's %q only by letter case; servers may read it as that member", abbreviate(name), api))
			}
		}
		return nil
	}
	return r.failAt(at, path(), fmt.Sprintf("unknown member %+q %s%s", abbreviate(name), r.where(), suggest(name, s.names)))
}

// seen records name in f and returns an earlier name of f that equals it up to case, as encoding/json
// compares them.
func (r *reader) seen(f *frame, name string) (string, bool) {
	if f.folded != nil {
		k := foldName(name)
		if prev, ok := f.folded[k]; ok {
			return prev, true
		}
		f.folded[k] = name
		return "", false
	}
	for _, prev := range r.names[f.names:] {
		if strings.EqualFold(prev, name) {
			return prev, true
		}
	}
	r.names = append(r.names, name)
	if len(r.names)-f.names > foldedAfter {
		f.folded = make(map[string]string, 2*foldedAfter)
		for _, n := range r.names[f.names:] {
			f.folded[foldName(n)] = n
		}
		r.names = r.names[:f.names]
	}
	return "", false
}

// foldName maps names that strings.EqualFold holds equal to one key. encoding/json matches member names
// to fields the same way (its unexported foldName): each rune becomes the smallest of its case orbit.
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, c := range s {
		for {
			next := unicode.SimpleFold(c)
			if next <= c {
				c = next
				break
			}
			c = next
		}
		b.WriteRune(c)
	}
	return b.String()
}

// suggest names the known member nearest to name, or lists them all when none is near.
func suggest(name string, known []string) string {
	best, dist := "", -1
	for _, k := range known {
		near := max(2, len(k)/2)
		if len(name) > len(k)+near || len(name) < len(k)-near {
			continue // too far to be near, whatever the distance; and a long name is costly to compare
		}
		d := levenshtein.ComputeDistance(strings.ToLower(name), k)
		if d <= near && (dist < 0 || d < dist) {
			best, dist = k, d
		}
	}
	if dist >= 0 {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}

// path is the dotted path of the member or element that the first n frames lead to.
func (r *reader) path(n int) string {
	var b strings.Builder
	b.WriteString(r.prefix)
	for _, f := range r.stack[:n] {
		if f.object {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(abbreviate(f.key))
		} else {
			fmt.Fprintf(&b, "[%d]", f.index)
		}
	}
	return b.String()
}

// where names the innermost object, for a message about one of its members.
func (r *reader) where() string {
	if p := r.path(len(r.stack) - 1); p != "" {
		return "in " + p
	}
	return "at the top level"
}

func (r *reader) failAt(offset int, path, msg string) error {
	line, col := position(r.data, int64(offset)+1)
	return &InputError{Line: line, Column: col, Path: path, Msg: msg}
}

// abbreviate shortens what an error message echoes of the document, which may be a member name or a number
// of a megabyte.
func abbreviate(s string) string {
	const head, tail = 40, 16
	if len(s) <= head+tail+3 {
		return s
	}
	h, t := head, len(s)-tail
	for h > 0 && !utf8.RuneStart(s[h]) {
		h--
	}
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:h] + "…" + s[t:]
}
