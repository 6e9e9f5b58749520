package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// TestSignedBundleFromBuild: the bundle `precheck build --signing-key` writes (wasm.Module.WriteSignedBundle,
// RS256 under key id "default") is accepted by the bundle service with `serve --bundle-key`'s verification
// (its default key id and algorithm); the same bundle with one byte of data.json changed, signed with
// another key, or not signed, is refused.
func TestSignedBundleFromBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasm.Compile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	key, other := rsaKeys(t)
	sign := func(k *rsa.PrivateKey) []byte {
		t.Helper()
		var buf bytes.Buffer
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		if err := m.WriteSignedBundle(&buf, wasm.Signing{Key: pemKey}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	signed := sign(key)
	var unsigned bytes.Buffer
	if err := m.WriteBundle(&unsigned); err != nil {
		t.Fatal(err)
	}
	// As serve.go builds it from --bundle-key with --bundle-key-id and --bundle-key-alg at their defaults.
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	verify := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
		"default": {Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), Algorithm: "RS256"},
	}, "default", "", nil)

	for _, tt := range []struct {
		name    string
		bundle  []byte
		refused string // "" when the bundle is to be accepted
	}{
		{"signed", signed, ""},
		{"data.json changed by one byte", tamper(t, signed, "data.json"), "digest mismatch"},
		{"signed with another key", sign(other), "verification"},
		{"not signed", unsigned.Bytes(), "signatures"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/gzip")
				w.Write(tt.bundle)
			}))
			defer bs.Close()
			var source server.Source = &server.BundleService{URL: bs.URL + "/bundles/precheck.tar.gz", Verify: verify}
			got, err := source.Load(ctx)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("loaded with err %v, want it refused (%q)", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Revision() != p.Revision() {
				t.Errorf("revision %q, want the build's %q", got.Revision(), p.Revision())
			}
		})
	}
}

// rsaKeys returns two RSA keys, generated once per test binary: generating a 2048-bit key takes a good
// part of a second under -race, and no test needs keys of its own, only two that differ.
func rsaKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keys, err := generatedKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys[0], keys[1]
}

var generatedKeys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return keys, err
		}
		keys[i] = k
	}
	return keys, nil
})

func tamper(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	changed := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "/") == name {
			i := bytes.IndexAny(body, "123456789")
			if i < 0 {
				t.Fatalf("%s has no digit to change", name)
			}
			body[i] = '0'
			changed = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatalf("the bundle has no %s", name)
	}
	return out.Bytes()
}
