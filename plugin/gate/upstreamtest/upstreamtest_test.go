package upstreamtest

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const p, c = RegulatedProject, Cluster

func request(t *testing.T, raw string) *http.Request {
	t.Helper()
	req, err := readRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return req
}

// TestBypassModelRouters: which routers route which requests, and to which IDs.
func TestBypassModelRouters(t *testing.T) {
	for _, tt := range []struct {
		request string
		routers []string // the routers that route it to the encrypt call on (p, c)
	}{
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt HTTP/1.1\r\n", []string{"exact", "subtree", "any-method", "case", "decode", "tomcat", "spring", "iis", "override", "rewrite", "lenient"}},
		{"GET /v2/" + p + "/clusters/" + c + "/encrypt HTTP/1.1\r\n", []string{"any-method"}},
		{"post /v2/" + p + "/clusters/" + c + "/encrypt HTTP/1.1\r\n", []string{"any-method", "case", "iis", "lenient"}},
		{"POST /V2/" + p + "/clusters/" + c + "/ENCRYPT HTTP/1.1\r\n", []string{"case", "iis", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/x/%2e%2e/encrypt HTTP/1.1\r\n", []string{"decode", "tomcat", "iis", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "%2Fencrypt HTTP/1.1\r\n", []string{"decode", "spring", "iis", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt;jsessionid=1 HTTP/1.1\r\n", []string{"tomcat", "spring", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/x/..;/encrypt HTTP/1.1\r\n", []string{"tomcat", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt.json HTTP/1.1\r\n", []string{"spring", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt%20 HTTP/1.1\r\n", []string{"spring", "iis", "lenient"}},
		{"POST /v2/" + p + "/clusters./" + c + "/encrypt HTTP/1.1\r\n", []string{"iis", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/%u0065ncrypt HTTP/1.1\r\n", []string{"iis", "lenient"}},
		{"POST /v2\\" + p + "\\clusters\\" + c + "\\encrypt HTTP/1.1\r\n", []string{"iis", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/%2565ncrypt HTTP/1.1\r\n", []string{"lenient"}},
		{"GET /v2/" + p + "/clusters/" + c + "/encrypt HTTP/1.1\r\nX-HTTP-Method-Override: post\r\n", []string{"any-method", "override", "lenient"}},
		{"POST /v2/" + p + "/clusters HTTP/1.1\r\nX-Original-URL: /v2/" + p + "/clusters/" + c + "/encrypt\r\n", []string{"rewrite", "lenient"}},
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt/v2/" + DefaultProject + "/clusters/" + c + "/encrypt HTTP/1.1\r\n", []string{"subtree"}},
		{"POST /v2/" + p + "/clusters/" + c + "/encrypt-info HTTP/1.1\r\n", nil},
		{"GET /v1.0/" + p + "/clusters/" + c + " HTTP/1.1\r\n", nil},
	} {
		req := request(t, tt.request+"Host: x\r\n\r\n")
		var got []string
		for _, r := range Routers() {
			if rt, ok := r.Route(req); ok {
				if rt != (Route{p, c}) {
					t.Errorf("%q: %s routes it to %+v", tt.request, r.Name, rt)
				}
				got = append(got, r.Name)
			}
		}
		if !slices.Equal(got, tt.routers) {
			t.Errorf("%q: routed by %v, want %v", tt.request, got, tt.routers)
		}
	}
	req := request(t, "POST /v2/"+p+"%2Fx/clusters/"+c+"/encrypt HTTP/1.1\r\nHost: x\r\n\r\n")
	if rt, ok := Routers()[0].Route(req); !ok || rt.ProjectID != p+"/x" {
		t.Errorf("exact: %+v %v; want the encoded slash kept inside the project ID", rt, ok)
	}
}

// TestBypassModelReaders: what each reader reads.
func TestBypassModelReaders(t *testing.T) {
	const sm, gc = "SMcompatible", "generalCipher"
	for _, tt := range []struct {
		body string
		ct   string
		algs map[string]string // reader -> crypt_algorithm read; absent: no reading
	}{
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k"}}`,
			algs: map[string]string{"go-sdk": sm, "go-stream": sm, "first-wins": sm, "last-wins": sm, "fastjson": sm, "drop-invalid": sm}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k","CRYPT_ALGORITHM":"generalCipher"}}`,
			algs: map[string]string{"go-sdk": gc, "go-stream": gc, "first-wins": sm, "last-wins": sm, "fastjson": gc, "drop-invalid": sm}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k","crypt_algorithm":"generalCipher"}}`,
			algs: map[string]string{"go-sdk": gc, "go-stream": gc, "first-wins": sm, "last-wins": gc, "fastjson": gc, "drop-invalid": gc}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k","cryptAlgorithm":"generalCipher"}}`,
			algs: map[string]string{"go-sdk": sm, "go-stream": sm, "first-wins": sm, "last-wins": sm, "fastjson": gc, "drop-invalid": sm}},
		{body: "{\"encrypt\":{\"crypt_algorithm\":\"SMcompatible\",\"master_key_id\":\"k\",\"crypt_algorithm\xff\":\"generalCipher\"}}",
			algs: map[string]string{"go-sdk": sm, "go-stream": sm, "first-wins": sm, "last-wins": sm, "fastjson": sm, "drop-invalid": gc}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k"}}{"encrypt":{"crypt_algorithm":"generalCipher"}}`,
			algs: map[string]string{"go-sdk": sm, "go-stream": gc}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k"},"ENCRYPT":{"crypt_algorithm":"generalCipher"}}`,
			algs: map[string]string{"go-sdk": gc, "go-stream": gc, "first-wins": sm, "last-wins": sm, "drop-invalid": sm}},
		{body: `{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_name":"K+ACIALAAi-crypt_algorithm+ACIAOgAi-generalCipher","master_key_id":"k"}}`, ct: "application/json; charset=utf-7",
			algs: map[string]string{"go-sdk": sm, "go-stream": sm, "first-wins": sm, "last-wins": sm, "fastjson": sm, "drop-invalid": sm,
				"charset/go-sdk": gc, "charset/first-wins": sm, "charset/last-wins": gc}},
		{body: string(utf16Bytes(`{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"k"}}`, true, false)), ct: "application/json;charset=UTF-16",
			algs: map[string]string{"charset/go-sdk": gc, "charset/first-wins": gc, "charset/last-wins": gc}},
		{body: `{"encrypt":{"crypt_algorithm":7,"master_key_id":"k"}}`, algs: map[string]string{}},
		{body: `{"encrypt":{"master_key_id":"k"}}`, algs: map[string]string{}},
	} {
		h := http.Header{}
		if tt.ct != "" {
			h.Set("Content-Type", tt.ct)
		}
		got := map[string]string{}
		for _, r := range Readers() {
			if e, ok := r.Read(h, []byte(tt.body)); ok {
				got[r.Name] = e.CryptAlgorithm
			}
		}
		if !mapsEqual(got, tt.algs) {
			t.Errorf("%q:\n got %v\nwant %v", tt.body, got, tt.algs)
		}
	}
	e, ok := Readers()[0].Read(nil, []byte(`{"encrypt":{"crypt_algorithm":"SMcompatible","master_key_id":"k","master_`+"\u212a"+`ey_id":"other"}}`))
	if !ok || e.MasterKeyID != "other" {
		t.Errorf("go-sdk: %+v; want the Kelvin sign to fold to k", e)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestBypassModelSmuggling: the body of a request the upstream does not execute is read as the next
// request, unless it asked for Connection: close; an executed call is answered with a job ID.
func TestBypassModelSmuggling(t *testing.T) {
	inner := Case{Method: "POST", Target: encryptPath(p), Body: []byte(bodyOf(allowed(p)))}.Raw("x")
	for _, tt := range []struct {
		name     string
		header   string
		smuggled bool
	}{
		{"keep-alive", "", true},
		{"connection close", "Connection: close\r\n", false},
	} {
		tr := NewTransport()
		req, _ := http.NewRequest("GET", "http://x/v1.0/"+p+"/clusters/"+c, bytes.NewReader(inner))
		req.Close = tt.header != ""
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := tr.Take()
		if n := len(got); tt.smuggled && (n != 2 || !got[1].Smuggled || !got[1].Executed()) || !tt.smuggled && n != 1 {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
	tr := NewTransport()
	req, _ := http.NewRequest("POST", "http://x"+encryptPath(p), strings.NewReader(bodyOf(allowed(p))))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(b.String(), "job_id") || len(tr.Executed()) != 1 {
		t.Errorf("%d %s, %v", resp.StatusCode, b.String(), tr.Requests())
	}
}
