// Package redact takes secrets out of text before precheck logs it or answers with it. Text that precheck
// did not write itself (an upstream's error, a facts API's message, a transport error that quotes a
// malformed response) may echo the caller's credentials; it is passed through Text first, wherever it goes.
//
//	logger.Warn("proxy", "error", redact.Text(err.Error(), req.Header))
//
// Two nets catch a secret: by name, the values of the request's credential headers are removed wherever they
// appear; by pattern, what looks like a signature, a token or a key is removed even when no header names
// it (an upstream may echo a signature without its "Signature=" marker).
package redact

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Mask replaces each secret.
const Mask = "[REDACTED]"

// SecretHeaders are the request headers whose values are credentials: the SDK's AK/SK signature, IAM
// tokens, and the generic ones.
var SecretHeaders = []string{
	"Authorization", "Proxy-Authorization", "X-Auth-Token", "X-Subject-Token", "X-Security-Token",
	"Cookie", "Set-Cookie", "X-Api-Key",
}

// patterns find secrets by their form. Each keeps its first group (a marker such as "Signature=") and masks
// the rest.
var patterns = []*regexp.Regexp{
	// name=value and name: value pairs whose name says secret (the SDK's "Access=AK, Signature=hex", tokens).
	regexp.MustCompile(`(?i)(\b(?:signature|access|credential|token|secret|password|passwd|sk|ak|x-auth-token|authorization)"?\s*[=:]\s*"?)[^\s,;"&]+`),
	regexp.MustCompile(`(?i)(bearer\s+|basic\s+|sdk-hmac-sha256\s+|sdk-hmac-sm3\s+)[^\s,;"]+`),
	// Hex of 40 or more digits (an HMAC-SHA256 or SM3 signature is 64), tokens and key material: long runs of
	// base64 or base64url.
	regexp.MustCompile(`()\b[0-9a-fA-F]{40,}\b`),
	regexp.MustCompile(`()[A-Za-z0-9+/_=-]{64,}`),
	// A Huawei Cloud AK is 20 upper-case letters and digits, an SK 40 letters and digits.
	regexp.MustCompile(`()\b[A-Z0-9]{20}\b`),
	regexp.MustCompile(`()\b[A-Za-z0-9]{40}\b`),
}

// minPart is the shortest piece of a header value that is removed on its own: shorter ones ("SDK",
// "Bearer") are words, not secrets.
const minPart = 8

// Text returns s without the values of h's credential headers and without anything that looks like a
// secret. h may be nil.
func Text(s string, h http.Header) string {
	if s == "" {
		return s
	}
	for _, name := range SecretHeaders {
		for _, v := range h.Values(name) {
			s = removeValue(s, v)
		}
	}
	for _, p := range patterns {
		s = p.ReplaceAllString(s, "${1}"+Mask)
	}
	return s
}

// removeValue removes a header value from s: whole, and each of its parts (an Authorization header is
// "SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...": a part may be echoed alone).
func removeValue(s, v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= minPart {
		s = strings.ReplaceAll(s, v, Mask)
	}
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '=' }) {
		if len(part) >= minPart {
			s = strings.ReplaceAll(s, part, Mask)
		}
	}
	return s
}

// Control reports whether r would not read as part of one line of what the text says wherever it is
// shown (a log line, a terminal, an error message): a control character (C0, DEL, C1), a line or
// paragraph separator, a bidirectional control that reorders what follows it, or an invisible one (zero
// width space, word joiner, byte order mark) that makes two texts that differ look the same.
func Control(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f' || r == '\u061c' ||
		r == '\u200b' || r == '\u2060' || r == '\ufeff'
}

// Line returns s as one line of at most max bytes, then a note of how much was cut if any was: each Control character
// becomes a space, and invalid UTF-8 U+FFFD. For text precheck did not write (a facts API's error message,
// which may be a proxy's whole HTML page) before it goes into an error or a log. Redact first: cutting may
// split a secret that the patterns would have found whole.
func Line(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if Control(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) { // a rune the cut would split goes whole
		cut--
	}
	n := len(s) - cut
	if n == 1 {
		return s[:cut] + "… (1 more byte)"
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", n)
}
