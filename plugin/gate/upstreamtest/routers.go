package upstreamtest

import (
	"net/http"
	"strconv"
	"strings"
)

// Route is the encrypt call a router would dispatch a request to: on which project and cluster.
type Route struct {
	ProjectID string
	ClusterID string
}

// Router decides, from a request as a server read it (method, raw request-target, headers; never the body),
// whether a server that routes like it would dispatch the request to the encrypt handler.
type Router struct {
	Name  string
	Route func(r *http.Request) (Route, bool)
}

// pathRules are the liberties a front end or framework takes with a path before matching it against
// /v2/{project_id}/clusters/{cluster_id}/encrypt. Without any, segments are percent-decoded one by one (an
// encoded slash stays inside its segment) and a path with "." or ".." segments or an invalid escape is not
// routed, as Go's ServeMux does.
type pathRules struct {
	stripParams bool // drop ";params" from every segment before decoding (Tomcat, Spring: ;jsessionid=, /..;/)
	decodeAll   int  // percent-decode the whole path this many times before splitting it, %2F included (2: nginx in front of Tomcat)
	cut         bool // after decoding, a ? or # ends the path: a decoding proxy forwards it so, and upstream it starts the query (nginx)
	percentU    bool // decode IIS's %uXXXX escapes too
	backslash   bool // a backslash (also decoded from %5C) is a slash (IIS)
	nul         bool // a decoded NUL ends the path (C-based servers)
	trim        bool // spaces and tabs around a segment are dropped (Spring's trimTokens)
	winTrim     bool // trailing dots and spaces of a segment are dropped, as Windows names are (IIS)
	collapse    bool // drop empty segments (merge "//"); a trailing slash is ignored
	dots        bool // resolve "." and ".." segments (after decoding, so %2e counts)
	fold        bool // literal segments match whatever their letter case
	suffix      bool // the last segment may be encrypt.<anything>, and a trailing slash is ignored (Spring)
	noSlash     bool // an encoded slash (%2F) is refused (Tomcat's default)
	subtree     bool // segments after "encrypt" are the handler's too (ServeMux's ".../encrypt/" pattern)
}

// methodRules say which methods reach the handler.
type methodRules struct {
	any      bool // the handler is registered without a method (http.Handle("/v2/...", h)): every method
	fold     bool // the method matches whatever its letter case ("post")
	override bool // X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override name the method
}

// Method-override and URL-rewrite headers that common frameworks honour.
var (
	overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}
	rewriteHeaders  = []string{"X-Original-Url", "X-Rewrite-Url"}
)

func router(name string, m methodRules, p pathRules, rewrite bool) Router {
	return Router{Name: name, Route: func(r *http.Request) (Route, bool) {
		if !methodMatches(r, m) {
			return Route{}, false
		}
		target := r.RequestURI
		if rewrite {
			for _, h := range rewriteHeaders {
				if v := r.Header.Get(h); v != "" {
					target = v
					break
				}
			}
		}
		return matchPath(target, p)
	}}
}

func methodMatches(r *http.Request, m methodRules) bool {
	method := r.Method
	if m.override {
		for _, h := range overrideHeaders {
			if v := strings.TrimSpace(r.Header.Get(h)); v != "" {
				method = strings.ToUpper(v) // as Express's method-override and Symfony do
				break
			}
		}
	}
	switch {
	case m.any:
		return true
	case m.fold:
		return strings.EqualFold(method, http.MethodPost)
	default:
		return method == http.MethodPost
	}
}

// Routers returns the routers an upstream applies to every request, each modelling one way real servers
// route a path:
//
//	exact       Go's ServeMux with "POST /v2/{project_id}/clusters/{cluster_id}/encrypt": segments decoded one
//	            by one (%2F stays inside its segment), no dot segments or empty segments, POST only
//	any-method  the same path registered without a method: every method reaches the handler
//	subtree     ServeMux with the subtree pattern "POST /v2/{project_id}/clusters/{cluster_id}/encrypt/":
//	            whatever follows "encrypt/" reaches the handler too
//	case        a case-insensitive framework: the method ("post") and the literal segments ("/V2/", "/ENCRYPT")
//	decode      nginx-like normalisation: the whole path percent-decoded (%2F, %2e, %3F), then "//" merged and
//	            dot segments resolved
//	tomcat      ";params" stripped from each segment (";jsessionid=", "/..;/"), then decoded, "//" merged and
//	            dots resolved; an encoded slash refused
//	spring      Spring MVC's UrlPathHelper and AntPathMatcher: ";params" stripped, decoded, "//" merged,
//	            segments trimmed ("encrypt%20"), suffix pattern match ("encrypt.json"), a trailing slash
//	iis         IIS: %uXXXX escapes, a backslash for a slash, trailing dots and spaces of a segment dropped
//	            ("clusters."), case-insensitive, decoded, dots resolved
//	override    X-HTTP-Method-Override / X-HTTP-Method / X-Method-Override name the method
//	rewrite     X-Original-URL / X-Rewrite-URL replace the path (IIS, Symfony)
//	lenient     all of the above at once, decoding twice, as a stack of lenient front ends would
func Routers() []Router {
	all := pathRules{stripParams: true, decodeAll: 2, cut: true, percentU: true, backslash: true, nul: true, trim: true, winTrim: true,
		collapse: true, dots: true, fold: true, suffix: true}
	return []Router{
		router("exact", methodRules{}, pathRules{}, false),
		router("subtree", methodRules{}, pathRules{subtree: true}, false),
		router("any-method", methodRules{any: true}, pathRules{}, false),
		router("case", methodRules{fold: true}, pathRules{fold: true}, false),
		router("decode", methodRules{}, pathRules{decodeAll: 1, cut: true, collapse: true, dots: true}, false),
		router("tomcat", methodRules{}, pathRules{stripParams: true, collapse: true, dots: true, noSlash: true}, false),
		router("spring", methodRules{}, pathRules{stripParams: true, decodeAll: 1, collapse: true, trim: true, suffix: true}, false),
		router("iis", methodRules{fold: true}, pathRules{decodeAll: 1, percentU: true, backslash: true, winTrim: true, collapse: true, dots: true, fold: true}, false),
		router("override", methodRules{override: true}, pathRules{}, false),
		router("rewrite", methodRules{}, pathRules{}, true),
		router("lenient", methodRules{fold: true, override: true}, all, true),
	}
}

// matchPath matches a request-target (origin form "/path?query", or absolute form "http://host/path")
// against the encrypt path under the rules.
func matchPath(target string, p pathRules) (Route, bool) {
	path, ok := targetPath(target)
	if !ok {
		return Route{}, false
	}
	if p.stripParams {
		segs := strings.Split(path, "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		path = strings.Join(segs, "/")
	}
	var segs []string
	if p.decodeAll > 0 {
		for range p.decodeAll {
			if path, ok = unescape(path, p.percentU, false); !ok {
				return Route{}, false
			}
		}
		if i := strings.IndexAny(path, "?#"); i >= 0 && p.cut {
			path = path[:i]
		}
		if p.nul {
			path, _, _ = strings.Cut(path, "\x00")
		}
		if p.backslash {
			path = strings.ReplaceAll(path, `\`, "/")
		}
		segs = strings.Split(path, "/")
	} else {
		if p.backslash {
			path = strings.ReplaceAll(path, `\`, "/")
		}
		segs = strings.Split(path, "/")
		for i, s := range segs {
			d, ok := unescape(s, p.percentU, true)
			if !ok || p.noSlash && strings.ContainsRune(d, '/') {
				return Route{}, false
			}
			segs[i] = d
		}
	}
	if len(segs) == 0 || segs[0] != "" {
		return Route{}, false
	}
	segs = segs[1:]
	for i, s := range segs {
		if p.trim {
			s = strings.Trim(s, " \t")
		}
		if p.winTrim && strings.Trim(s, ".") != "" {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	if p.collapse {
		kept := segs[:0:0]
		for _, s := range segs {
			if s != "" {
				kept = append(kept, s)
			}
		}
		segs = kept
	}
	if p.dots {
		var out []string
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
		segs = out
	} else if !p.collapse {
		for _, s := range segs {
			if s == "." || s == ".." {
				return Route{}, false // ServeMux redirects such a path instead of serving it
			}
		}
	}
	if p.suffix && len(segs) > 0 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	if len(segs) < 5 || len(segs) > 5 && !p.subtree {
		return Route{}, false
	}
	lit := func(got, want string) bool {
		if p.fold {
			return strings.EqualFold(got, want)
		}
		return got == want
	}
	last := segs[4]
	if p.suffix {
		if i := strings.IndexByte(last, '.'); i > 0 {
			last = last[:i]
		}
	}
	if !lit(segs[0], "v2") || !lit(segs[2], "clusters") || !lit(last, "encrypt") || segs[1] == "" || segs[3] == "" {
		return Route{}, false
	}
	return Route{ProjectID: segs[1], ClusterID: segs[3]}, true
}

// targetPath is the (still escaped) path of a request-target; a literal ? or # ends it.
func targetPath(target string) (string, bool) {
	if i := strings.Index(target, "://"); i > 0 && !strings.HasPrefix(target, "/") {
		rest := target[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", false
		}
		target = rest[j:]
	}
	if !strings.HasPrefix(target, "/") {
		return "", false
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	return target, true
}

// unescape percent-decodes s (and %uXXXX, with percentU). strict refuses an invalid escape, as Go does;
// otherwise it is kept as it is, as lenient servers do.
func unescape(s string, percentU, strict bool) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if percentU && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			if v, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
				b.WriteRune(rune(v))
				i += 5
				continue
			}
		}
		if i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		if strict {
			return "", false
		}
		b.WriteByte('%')
	}
	return b.String(), true
}
