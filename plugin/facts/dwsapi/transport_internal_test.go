package dwsapi

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		" 3 ":                           3 * time.Second,
		"-1":                            0,
		"1.5":                           0,
		"abc":                           0,
		"99999999999":                   0,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past: now
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestThrottlingAnswers(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{429, ``, true},
		{403, `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}`, true},
		{400, `{"error":{"error_code":"APIG.0308","error_msg":"x"}}`, true},
		{500, `{"code":"apigw.0308","message":"x"}`, true},
		{500, `{"error_code":"DWS.0001","error_msg":"x"}`, false},
		{200, `{"error_code":"APIGW.0308"}`, false},
		{503, `not json`, false},
	} {
		resp := &http.Response{StatusCode: c.status, Header: http.Header{}, Body: io.NopCloser(bytes.NewBufferString(c.body))}
		_, got := throttling(resp)
		if got != c.want {
			t.Errorf("%d %s: throttling %v, want %v", c.status, c.body, got, c.want)
		}
		// The body is still there for the SDK to read.
		if b, _ := io.ReadAll(resp.Body); string(b) != c.body {
			t.Errorf("%d %s: body became %q", c.status, c.body, b)
		}
	}
}

// FuzzThrottlingAnswer feeds arbitrary Retry-After values and error bodies, which come from the server:
// reading them never panics, never waits a negative time, and never loses the body.
func FuzzThrottlingAnswer(f *testing.F) {
	f.Add(429, "1", `{"error_code":"APIGW.0308","error_msg":"x"}`)
	f.Add(403, "Fri, 02 Jan 2026 03:04:15 GMT", `{"error":{"error_code":"APIG.0308"}}`)
	f.Add(500, "", `{"code":7}`)
	f.Fuzz(func(t *testing.T, status int, after, body string) {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {after}}, Body: io.NopCloser(bytes.NewBufferString(body))}
		wait, _ := throttling(resp)
		if wait < 0 {
			t.Fatalf("wait %v", wait)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != body {
			t.Fatalf("body became %q", b)
		}
	})
}
