package gate

import (
	"net/url"
	"strings"
	"testing"
)

func TestReadRoute(t *testing.T) {
	const p, c = "89cd04f168b84af6be287f71730fdb4b", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	const base = "/v2/" + p + "/clusters/" + c
	type want int
	const (
		passes  want = iota // not the encrypt call in any reading
		decided             // the encrypt call of p and c in every reading
		refused             // unreadable, and it may be the encrypt call; or the call in one reading, not in another
	)
	for _, tt := range []struct {
		name, path string
		want       want
		// the IDs when decided, if not p and c
		project, cluster string
	}{
		{name: "plain", path: base + "/encrypt", want: decided},
		{name: "gateway prefix", path: "/gateway/dws" + base + "/encrypt", want: decided},
		{name: "trailing slash", path: base + "/encrypt/", want: decided},
		{name: "duplicate slashes", path: "//v2//" + p + "//clusters//" + c + "//encrypt//", want: decided},
		{name: "upper-case constants", path: "/V2/" + p + "/CLUSTERS/" + c + "/ENCRYPT", want: decided},
		{name: "IDs keep their case", path: "/v2/" + strings.ToUpper(p) + "/clusters/" + strings.ToUpper(c) + "/encrypt", want: decided,
			project: strings.ToUpper(p), cluster: strings.ToUpper(c)},
		{name: "format suffix", path: base + "/encrypt.json", want: decided},
		{name: "params on the last segment", path: base + "/encrypt;x", want: decided},
		{name: "jsessionid", path: "/v2/" + p + "/clusters/" + c + ";jsessionid=1/encrypt;jsessionid=1", want: decided},
		{name: "encoded letters", path: "/v2/" + p + "/clusters/" + c + "/%65ncrypt", want: decided},
		{name: "encoded ID characters", path: "/v2/" + p + "/clusters/%39" + c[1:] + "/encrypt", want: decided},
		{name: "encoded space after encrypt", path: base + "/encrypt%20", want: decided},
		{name: "dot segments in the prefix", path: "/x/../v2/" + p + "/clusters/" + c + "/encrypt", want: decided},
		{name: "..;/ in the prefix", path: "/public/..;/v2/" + p + "/clusters/" + c + "/encrypt", want: decided},
		{name: "malformed ID, left to the policy", path: "/v2/" + p + "/clusters/not-a-uuid/encrypt", want: decided, cluster: "not-a-uuid"},

		{name: "encoded slash in an ID", path: "/v2/" + p + "/clusters/x%2F" + c + "/encrypt", want: refused},
		{name: "encoded slash before encrypt", path: base + "%2Fencrypt", want: refused},
		{name: "encoded backslash before encrypt", path: base + "%5Cencrypt", want: refused},
		{name: "double-encoded slash", path: "/v2/" + p + "/clusters/x%252F" + c + "/encrypt", want: refused},
		{name: "dot-dot replaces the cluster", path: "/v2/" + p + "/clusters/other/../" + c + "/encrypt", want: refused},
		{name: "encoded dot-dot", path: "/v2/" + p + "/clusters/other/%2e%2e/" + c + "/encrypt", want: refused},
		{name: "dot-dot after encrypt", path: base + "/encrypt/x/..", want: refused},
		{name: "dot-dot eating an empty segment", path: base + "/encrypt//..", want: refused},
		{name: "dot segment", path: base + "/./encrypt", want: refused},
		{name: "..;/ replaces the cluster", path: "/v2/" + p + "/clusters/other/..;/" + c + "/encrypt", want: refused},
		{name: "still encoded after the decodings", path: base + "/%25252525252565ncrypt", want: refused},
		{name: "invalid escape after a decoding", path: base + "/encrypt%25zz", want: refused},
		{name: "encoded NUL", path: base + "/encrypt%00/x", want: refused},
		{name: "encoded NUL inside encrypt", path: base + "/encr%00ypt", want: refused},
		{name: "overlong UTF-8 dot", path: base + "/x/%c0%ae%c0%ae/encrypt", want: refused},
		{name: "encoded ? cuts the path for a decoding proxy", path: "/v2/" + p + "/clusters/" + c + "/encrypt%3F/x", want: refused},

		{name: "cluster details", path: "/v1.0/" + p + "/clusters/" + c, want: passes},
		{name: "encrypt-info (v1, the real one)", path: "/v1/" + p + "/clusters/" + c + "/encrypt-info", want: passes},
		{name: "encrypt-info under v2", path: base + "/encrypt-info", want: passes},
		{name: "encrypted", path: base + "/encrypted", want: passes},
		{name: "below encrypt, as a prefix router reads it", path: base + "/encrypt/x", want: refused},
		// A prefix router executes the first call on its cluster; the last one names another.
		{name: "a second call after the first", path: base + "/encrypt/v2/0a1b2c3d4e5f60718293a4b5c6d7e8f9/clusters/11111111-2222-3333-4444-555555555555/encrypt", want: refused},
		// A router that keeps empty segments binds an empty ID.
		{name: "empty project", path: "/v2//clusters/" + c + "/encrypt", want: refused},
		{name: "empty cluster", path: "/v2/" + p + "/clusters//encrypt", want: refused},
		{name: "empty cluster, encoded", path: "/v2/" + p + "/clusters//%65ncrypt", want: refused},
		{name: "the same call twice", path: base + "/encrypt" + base + "/encrypt", want: refused},
		{name: "trimmed spaces in a middle segment", path: "/v2/" + p + "/clusters%20/" + c + "/encrypt", want: decided},
		{name: "a trailing dot in a middle segment", path: "/v2./" + p + "/clusters./" + c + "/encrypt", want: decided},
		{name: "a backslash inside an ID", path: "/v2/" + p + `\x/clusters/` + c + "/encrypt", want: refused},
		{name: "clusters", path: "/v2/" + p + "/clusters", want: passes},
		{name: "v1 encrypt", path: "/v1/" + p + "/clusters/" + c + "/encrypt", want: passes},
		{name: "odd characters elsewhere", path: "/v1/" + p + "/jobs/%00x", want: passes},
		{name: "root", path: "/", want: passes},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse("https://dws.example.com" + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			r := readRoute(u)
			switch tt.want {
			case passes:
				if r.guarded || r.unreadable != "" {
					t.Errorf("%+v, want a call the gate passes through", r)
				}
			case refused:
				if r.unreadable == "" {
					t.Errorf("%+v, want a path the gate refuses", r)
				}
			case decided:
				wantP, wantC := cmpOr(tt.project, p), cmpOr(tt.cluster, c)
				if !r.guarded || r.unreadable != "" || r.projectID != wantP || r.clusterID != wantC {
					t.Errorf("%+v, want the encrypt call of %s in %s", r, wantC, wantP)
				}
			}
		})
	}
}

// TestReadRouteReadsTheWire: the path the transport writes, not the one the URL was parsed from.
func TestReadRouteReadsTheWire(t *testing.T) {
	const p, c = "89cd04f168b84af6be287f71730fdb4b", "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	for _, tt := range []struct {
		name    string
		u       *url.URL
		guarded bool
	}{
		{"Opaque", &url.URL{Scheme: "https", Host: "h", Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt", Path: "/"}, true},
		{"Opaque absolute", &url.URL{Scheme: "https", Host: "h", Opaque: "//h/v2/" + p + "/clusters/" + c + "/encrypt", Path: "/"}, true},
		{"Opaque absolute with a scheme", &url.URL{Scheme: "https", Host: "h", Opaque: "https://h/v2/" + p + "/clusters/" + c + "/encrypt", Path: "/"}, true},
		{"Opaque absolute, another call", &url.URL{Scheme: "https", Host: "h", Opaque: "//h/v1.0/" + p + "/clusters/" + c, Path: "/"}, false},
		{"backslashes", &url.URL{Scheme: "https", Host: "h", Opaque: `\v2\` + p + `\clusters\` + c + `\encrypt`}, true},
		{"Path with a literal %2F", &url.URL{Scheme: "https", Host: "h", Path: "/v2/" + p + "/clusters/x%2F" + c + "/encrypt"}, true},
		{"Opaque with a query mark", &url.URL{Scheme: "https", Host: "h", Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt?/x"}, true},
		{"Opaque with a NUL", &url.URL{Scheme: "https", Host: "h", Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt\x00/x"}, false},
		{"stale RawPath", &url.URL{Scheme: "https", Host: "h", Path: "/v2/" + p + "/clusters/" + c + "/encrypt", RawPath: "/v1/x"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := readRoute(tt.u); r.guarded != tt.guarded {
				t.Errorf("%+v", r)
			}
		})
	}
	for _, u := range []*url.URL{
		// A literal "%2F" in Path goes on the wire as %252F: the call in one reading, not in another.
		{Path: "/v2/" + p + "/clusters/x%2F" + c + "/encrypt"},
		// The server reads the path up to the '?'; a reading that does not is another call.
		{Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt?/x"},
		// Servers truncate at a NUL, or refuse it.
		{Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt\x00/x"},
		// An absolute target whose host is "v2": the path after the host is another call, the target read
		// whole as a path is the encrypt call.
		{Scheme: "http", Host: "h", Opaque: "//v2/" + p + "/clusters/" + c + "/encrypt", Path: "/"},
		{Scheme: "http", Host: "h", Opaque: "http://v2/" + p + "/clusters/" + c + "/encrypt", Path: "/"},
		// A space splits the request line: the JDK's server routes the target up to it.
		{Opaque: "/v2/" + p + "/clusters/" + c + "/encrypt x"},
		{Opaque: "/v1.0/" + p + "/clusters/" + c + " /v2/" + p + "/clusters/" + c + "/encrypt"},
		{Opaque: "//h/v2/" + p + "/clusters/" + c + "/encrypt HTTP/1.1 x"},
		{Path: "/v1.0/" + p + "/clusters/" + c, RawQuery: "a /v2/" + p + "/clusters/" + c + "/encrypt"},
		{Opaque: "/v1.0/x\ty"},
		// A backslash ends the host for a WHATWG URL parser, not for Go's.
		{Scheme: "http", Host: "h", Opaque: `//h\v2/` + p + "/clusters/" + c + "/encrypt", Path: "/"},
		// IIS decodes %uXXXX; the others refuse it or read it literally.
		{Opaque: "/v2/" + p + "/clusters/" + c + "/%u0065ncrypt"},
		{Opaque: "/v2/" + p + "/clusters/" + c + "/%U0065%u006E%u0063rypt"},
	} {
		if r := readRoute(u); r.unreadable == "" {
			t.Errorf("%s: %+v, want refused", u, r)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func FuzzReadRoute(f *testing.F) {
	for _, s := range []string{"/v2/p/clusters/c/encrypt", "/v2/p/clusters/a%2Fb/encrypt", "/a/../v2/p/clusters/c/encrypt;x", "/%25%32%46",
		"//v2//p/clusters/c/ENCRYPT.json/", "//v2/p/clusters/c/encrypt", "http://h/v2/p/clusters/c/encrypt/v2/q/clusters/d/encrypt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		// The path as a Go client's Opaque too: net/http writes it on the request line as it is.
		opaque := readRoute(&url.URL{Scheme: "http", Host: "h", Opaque: path, Path: "/"})
		if opaque.unreadable == "" && opaque.guarded && (opaque.projectID == "" || opaque.clusterID == "") {
			t.Errorf("Opaque %q decided with empty IDs: %+v", path, opaque)
		}
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		r := readRoute(u)
		if r.unreadable == "" && r.guarded && (r.projectID == "" || r.clusterID == "") {
			t.Errorf("%q decided with empty IDs: %+v", path, r)
		}
		if raw := wirePath(u); plain(raw) && readPlain(raw) != readEveryWay(raw) {
			t.Errorf("%q: the plain reading %+v is not every reading's %+v", raw, readPlain(raw), readEveryWay(raw))
		}
	})
}

// BenchmarkReadRoute is the cost of reading every request's path, the guarded call's and the others'.
func BenchmarkReadRoute(b *testing.B) {
	for _, path := range []string{
		"/v2/89cd04f168b84af6be287f71730fdb4b/clusters/97cbaab3-939e-4dbc-9187-0fe240f2b9fd/encrypt",
		"/v1.0/89cd04f168b84af6be287f71730fdb4b/clusters/97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"/gw/%2e%2e/v2/89cd04f168b84af6be287f71730fdb4b/clusters/97cbaab3-939e-4dbc-9187-0fe240f2b9fd;x=1/%65ncrypt.json",
	} {
		u, err := url.Parse(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(path[:8], func(b *testing.B) {
			for b.Loop() {
				readRoute(u)
			}
		})
	}
}
