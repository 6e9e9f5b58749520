package redact_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/precheck/precheck/plugin/redact"
)

const (
	ak        = "QTWAOYTTINDUT2QVKYUC"
	sk        = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
	signature = "6ba3bbb8e61b3aa3b6a4e6ca4e5b1f1d4c5b2b8c1f4e2a3d9c7e6f5a4b3c2d1e"
	token     = "MIIDkgYJKoZIhvcNAQcCoIIDgzCCA38CAQExDTALBglghkgBZQMEAgEwgXsGCSqGSIb3DQEHAaBuBGx7InRva2VuIjp7ImV4cGlyZXNfYXQiOiIy"
)

func TestText(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "SDK-HMAC-SHA256 Access="+ak+", SignedHeaders=content-type;host;x-sdk-date, Signature="+signature)
	h.Set("X-Auth-Token", token)
	secrets := []string{ak, sk, signature, token}
	for _, tt := range []struct{ name, text string }{
		{"malformed status line echoing the token", `net/http: malformed HTTP status code "` + token + `"`},
		{"signature without its marker", "upstream said: bad request " + signature + " rejected"},
		{"whole header echoed", "got Authorization: " + h.Get("Authorization")},
		{"access key alone", "unknown access key " + ak},
		{"secret key in a message", "sk is " + sk + "."},
		{"json echo", `{"error_msg":"token ` + token + ` expired","signature":"` + signature + `"}`},
		{"token without its header", "bearer " + token[:40]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.Text(tt.text, h)
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Errorf("Text(%q) = %q: still holds a secret", tt.text, got)
				}
			}
			if !strings.Contains(got, redact.Mask) {
				t.Errorf("Text(%q) = %q: nothing masked", tt.text, got)
			}
		})
	}
	t.Run("no header", func(t *testing.T) {
		if got := redact.Text("token="+token, nil); strings.Contains(got, token) {
			t.Errorf("got %q", got)
		}
	})
}

// TestTextKeepsWhatIsNotSecret: identifiers, codes and ordinary words are what an operator needs to read.
func TestTextKeepsWhatIsNotSecret(t *testing.T) {
	for _, s := range []string{
		"PRECHECK-GATE-001: gathering facts: ListClusterDetails 404 for cluster 97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		"project 89cd04f168b84af6be287f71730fdb4b: DWS.0015 resource not found",
		"dial tcp 127.0.0.1:8080: connect: connection refused",
	} {
		if got := redact.Text(s, nil); got != s {
			t.Errorf("Text(%q) = %q, want it unchanged", s, got)
		}
	}
}

func ExampleText() {
	h := http.Header{"X-Auth-Token": {"MIIDkgYJKoZIhvcNAQcCoIIDgzCCA38CAQExDTALBglghkgBZQME"}}
	fmt.Println(redact.Text(`malformed HTTP status code "MIIDkgYJKoZIhvcNAQcCoIIDgzCCA38CAQExDTALBglghkgBZQME"`, h))
	// Output: malformed HTTP status code "[REDACTED]"
}

func TestTextLeavesWordsThatEndLikeMarkers(t *testing.T) {
	s := "task: SNAPSHOTTING; disk: full"
	if got := redact.Text(s, nil); got != s {
		t.Errorf("Text(%q) = %q", s, got)
	}
}
