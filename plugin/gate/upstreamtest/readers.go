package upstreamtest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
)

// Encrypt is the body's encrypt object as one reader read it: what the upstream would convert with.
type Encrypt struct {
	CryptAlgorithm string
	MasterKeyID    string
	MasterKeyName  *string // nil: absent (or null)
}

// Reader reads a request body the way one kind of server does. It reports false when such a server would
// not execute the call: the body does not parse for it, or lacks what the API marks mandatory
// (crypt_algorithm and master_key_id, non-empty strings), or has a member of the wrong type.
type Reader struct {
	Name string
	Read func(h http.Header, body []byte) (Encrypt, bool)
}

// Readers returns the body readers an upstream applies to every request it routes to the encrypt call:
//
//	go-sdk              Go's encoding/json Decoder into the official SDK's model.EncryptClusterReq, as a Go server
//	                    written against the SDK's model reads it: member names match whatever their letter case
//	                    (Unicode simple folding: "master_\u212aey_id" is master_key_id), the last occurrence wins
//	                    (a second "encrypt" object is merged into the first), invalid UTF-8 and lone surrogates
//	                    become U+FFFD, unknown members are skipped unparsed, data after the first value is ignored
//	go-stream           the same, decoding every value in the body into the one request, as a handler that loops
//	                    on Decoder.More does: of {...}{...} the second counts
//	first-wins          exact member names, the first occurrence of a name wins, nothing may follow the value
//	last-wins           exact member names, the last occurrence wins, nothing may follow (JSON.parse, OPA)
//	fastjson            Alibaba fastjson's smart match, common in Java back ends: a name that is not a field's
//	                    matches the field whose name it equals ignoring case, "_" and "-" ("cryptAlgorithm",
//	                    "CRYPT-ALGORITHM"); the last match wins
//	drop-invalid        bytes that are not UTF-8 dropped, then last-wins (PHP's JSON_INVALID_UTF8_IGNORE):
//	                    "crypt_algorithm\xff" is crypt_algorithm
//	charset/<reader>    the body decoded from the charset its Content-Type declares (UTF-16, UTF-7, Shift_JIS,
//	                    GBK, ISO-8859-1; a UTF-8 byte-order mark dropped), then read by go-sdk, first-wins or
//	                    last-wins; no reading when the body is declared UTF-8 (or nothing) and has no byte-order
//	                    mark, since <reader> covers it
//	content-encoding    the body decompressed as its Content-Encoding says (gzip, deflate), then go-sdk
//
// Shift_JIS and GBK are decoded without their mapping tables (golang.org/x/text is not a dependency of the
// module): single bytes and the structure of multi-byte sequences are exact, and each double-byte character
// becomes a private-use rune of its own. That is enough to read JSON as such a server would, since every
// character that JSON gives a meaning to is ASCII.
func Readers() []Reader {
	exact := func(name string, firstWins bool, prepare func([]byte) []byte, match func(got, want string) bool) Reader {
		return Reader{Name: name, Read: func(_ http.Header, b []byte) (Encrypt, bool) {
			if prepare != nil {
				b = prepare(b)
			}
			return readTree(b, firstWins, match)
		}}
	}
	base := []Reader{
		{Name: "go-sdk", Read: func(_ http.Header, b []byte) (Encrypt, bool) { return readSDK(b, false) }},
		exact("first-wins", true, nil, nil),
		exact("last-wins", false, nil, nil),
	}
	out := append([]Reader(nil), base...)
	out = append(out,
		Reader{Name: "go-stream", Read: func(_ http.Header, b []byte) (Encrypt, bool) { return readSDK(b, true) }},
		exact("fastjson", false, nil, smartMatch),
		exact("drop-invalid", false, dropInvalidUTF8, nil),
	)
	for _, r := range base {
		out = append(out, Reader{Name: "charset/" + r.Name, Read: func(h http.Header, b []byte) (Encrypt, bool) {
			text, ok := decodeCharset(h.Get("Content-Type"), b)
			if !ok {
				return Encrypt{}, false
			}
			return r.Read(h, text)
		}})
	}
	return append(out, Reader{Name: "content-encoding/go-sdk", Read: func(h http.Header, b []byte) (Encrypt, bool) {
		plain, ok := decompress(h.Get("Content-Encoding"), b)
		if !ok {
			return Encrypt{}, false
		}
		return readSDK(plain, false)
	}})
}

func readSDK(body []byte, stream bool) (Encrypt, bool) {
	var req model.EncryptClusterReq
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return Encrypt{}, false
	}
	for stream && dec.More() {
		if err := dec.Decode(&req); err != nil {
			return Encrypt{}, false
		}
	}
	if req.Encrypt == nil {
		return Encrypt{}, false
	}
	e := Encrypt{CryptAlgorithm: req.Encrypt.CryptAlgorithm, MasterKeyID: req.Encrypt.MasterKeyId, MasterKeyName: req.Encrypt.MasterKeyName}
	return e, e.CryptAlgorithm != "" && e.MasterKeyID != ""
}

// smartMatch is fastjson's: equal, or equal once "_" and "-" are dropped and the case ignored.
func smartMatch(got, want string) bool {
	if got == want {
		return true
	}
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	return norm(got) == norm(want)
}

// jsonObject is a JSON object with its members in order, duplicates kept.
type jsonObject []jsonMember

type jsonMember struct {
	name  string
	value any
}

// get is the member matching name (exactly, when match is nil), the first or the last such.
func (o jsonObject) get(name string, firstWins bool, match func(got, want string) bool) (any, bool) {
	var v any
	found := false
	for _, m := range o {
		if m.name == name || match != nil && match(m.name, name) {
			if firstWins && found {
				continue
			}
			v, found = m.value, true
		}
	}
	return v, found
}

// readTree reads the body as one JSON value on encoding/json's tokenizer, and the encrypt object out of it
// with names matched by match (exactly when nil), the first or the last match winning.
func readTree(body []byte, firstWins bool, match func(got, want string) bool) (Encrypt, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := readValue(dec)
	if err != nil {
		return Encrypt{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return Encrypt{}, false
	}
	doc, _ := v.(jsonObject)
	encV, _ := doc.get("encrypt", firstWins, match)
	enc, ok := encV.(jsonObject)
	if !ok {
		return Encrypt{}, false
	}
	algV, _ := enc.get("crypt_algorithm", firstWins, match)
	idV, _ := enc.get("master_key_id", firstWins, match)
	nameV, _ := enc.get("master_key_name", firstWins, match)
	alg, ok1 := algV.(string)
	id, ok2 := idV.(string)
	e := Encrypt{CryptAlgorithm: alg, MasterKeyID: id}
	switch name := nameV.(type) {
	case nil:
	case string:
		e.MasterKeyName = &name
	default:
		return Encrypt{}, false
	}
	return e, ok1 && ok2 && alg != "" && id != ""
}

var errNotJSON = errors.New("upstreamtest: not a JSON value")

func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := jsonObject{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name, ok := k.(string)
			if !ok {
				return nil, errNotJSON
			}
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, jsonMember{name, v})
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return obj, nil
	case json.Delim('['):
		var arr []any
		for dec.More() {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	case json.Delim('}'), json.Delim(']'):
		return nil, errNotJSON
	default:
		return tok, nil
	}
}

// dropInvalidUTF8 removes the bytes that are not UTF-8.
func dropInvalidUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// decompress undoes a Content-Encoding of gzip or deflate (zlib, as HTTP means it, or raw deflate); false
// when there is none or it does not decode.
func decompress(encoding string, b []byte) ([]byte, bool) {
	var r io.Reader
	var err error
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "gzip", "x-gzip":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case "deflate":
		if r, err = zlib.NewReader(bytes.NewReader(b)); err != nil {
			r, err = flate.NewReader(bytes.NewReader(b)), nil
		}
	default:
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(r, 4<<20))
	return out, err == nil
}

// decodeCharset decodes body from the charset contentType declares, into UTF-8. It reports false when there
// is nothing to decode (UTF-8 or no charset declared, and no byte-order mark) or the charset is unknown.
func decodeCharset(contentType string, body []byte) ([]byte, bool) {
	charset := ""
	if _, params, err := mime.ParseMediaType(contentType); err == nil {
		charset = strings.ToLower(strings.TrimSpace(params["charset"]))
	}
	switch charset {
	case "", "utf-8", "utf8", "unicode-1-1-utf-8":
		if b, ok := bytes.CutPrefix(body, []byte("\xef\xbb\xbf")); ok {
			return b, true
		}
		return nil, false
	case "utf-16", "utf-16le", "ucs-2", "unicode", "csunicode", "iso-10646-ucs-2", "utf-16be", "unicodefffe":
		return decodeUTF16(body, charset == "utf-16be" || charset == "unicodefffe"), true
	case "iso-8859-1", "latin1", "l1", "us-ascii", "ascii", "windows-1252", "cp1252":
		out := make([]byte, 0, len(body))
		for _, c := range body {
			out = utf8.AppendRune(out, rune(c))
		}
		return out, true
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7":
		return decodeUTF7(body), true
	case "shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "windows-31j", "cp932", "csshiftjis":
		return decodeDoubleByte(body, sjisLead, sjisTrail, sjisSingle, false), true
	case "gbk", "gb2312", "gb18030", "cp936", "x-gbk", "csgb2312", "windows-936", "euc-cn":
		return decodeDoubleByte(body, gbkLead, gbkTrail, gbkSingle, true), true
	default:
		return nil, false
	}
}

func decodeUTF16(b []byte, bigEndian bool) []byte {
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		b, bigEndian = b[2:], false
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		b, bigEndian = b[2:], true
	}
	units := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if bigEndian {
			units = append(units, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			units = append(units, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	out := []byte(string(utf16.Decode(units)))
	if len(b)%2 == 1 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return out
}

func sjisLead(c byte) bool   { return c >= 0x81 && c <= 0x9F || c >= 0xE0 && c <= 0xFC }
func sjisTrail(c byte) bool  { return c >= 0x40 && c <= 0x7E || c >= 0x80 && c <= 0xFC }
func gbkLead(c byte) bool    { return c >= 0x81 && c <= 0xFE }
func gbkTrail(c byte) bool   { return c >= 0x40 && c <= 0x7E || c >= 0x80 && c <= 0xFE }
func sjisSingle(c byte) rune { return singleByte(c, 0xA1, 0xDF, 0xFF61, -1) }
func gbkSingle(c byte) rune  { return singleByte(c, 0x80, 0x80, 0x20AC, -1) }

// singleByte maps the non-ASCII single bytes [lo, hi] to base+offset (Shift_JIS half-width katakana, GBK's
// euro sign); other non-ASCII bytes that do not start a sequence are errors.
func singleByte(c byte, lo, hi byte, base, none rune) rune {
	switch {
	case c < 0x80:
		return rune(c)
	case c >= lo && c <= hi:
		return base + rune(c-lo)
	default:
		return none
	}
}

// decodeDoubleByte decodes a double-byte charset in the WHATWG manner: an invalid trail byte that is ASCII
// is not consumed (it is read again as itself), so a lead byte never swallows a quote but can swallow a
// backslash. With fourByte, GB18030's four-byte sequences are recognised too.
func decodeDoubleByte(b []byte, lead, trail func(byte) bool, single func(byte) rune, fourByte bool) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if r := single(c); r >= 0 {
			out = utf8.AppendRune(out, r)
			i++
			continue
		}
		if !lead(c) || i+1 >= len(b) {
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		t := b[i+1]
		switch {
		case trail(t):
			out = utf8.AppendRune(out, 0xF0000+rune(c)<<8|rune(t))
			i += 2
		case fourByte && t >= '0' && t <= '9' && i+3 < len(b) && gbkLead(b[i+2]) && b[i+3] >= '0' && b[i+3] <= '9':
			n := rune(c-0x81)*12600 + rune(t-'0')*1260 + rune(b[i+2]-0x81)*10 + rune(b[i+3]-'0')
			out = utf8.AppendRune(out, 0x100000+n%0xFFFE)
			i += 4
		default:
			out = utf8.AppendRune(out, utf8.RuneError)
			if t < 0x80 {
				i++
			} else {
				i += 2
			}
		}
	}
	return out
}

// decodeUTF7 decodes RFC 2152 UTF-7: "+" starts base64 of UTF-16BE, ended by any other character (a "-" is
// absorbed); "+-" is "+". In UTF-7 "+ACI-" is a quotation mark, so ASCII text that is one JSON value as
// UTF-8 can be another as UTF-7.
func decodeUTF7(b []byte) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out []byte
	for i := 0; i < len(b); {
		if b[i] != '+' {
			out = append(out, b[i])
			i++
			continue
		}
		i++
		if i < len(b) && b[i] == '-' {
			out = append(out, '+')
			i++
			continue
		}
		var units []uint16
		var bits, n uint32
		for i < len(b) {
			v := strings.IndexByte(alphabet, b[i])
			if v < 0 {
				break
			}
			bits, n = bits<<6|uint32(v), n+6
			if n >= 16 {
				n -= 16
				units = append(units, uint16(bits>>n))
				bits &= 1<<n - 1
			}
			i++
		}
		out = append(out, string(utf16.Decode(units))...)
		if i < len(b) && b[i] == '-' {
			i++
		}
	}
	return out
}
