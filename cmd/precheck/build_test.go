//go:build unix

// The file modes a build writes depend on the umask, which only unix has.

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/plugin/server"
)

// TestBuildIsReproducible: `precheck build` gives the same revision and the same bytes for the same policy
// however its path is spelt and wherever the directory lies.
func TestBuildIsReproducible(t *testing.T) {
	withoutRace.Delegate(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(elsewhere, os.DirFS(filepath.Join(root, "rego"))); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	t.Chdir(root)
	var want struct{ revision, module, bundle string }
	for i, spelling := range []string{"./rego", "rego/", filepath.Join(root, "rego"), elsewhere} {
		mod, tarball := filepath.Join(out, "m.wasm"), filepath.Join(out, "b.tar.gz")
		code, stdout, stderr := precheck(t, "", "build", "--policy", spelling, "-o", mod, "--bundle", tarball)
		if code != exitAllowed {
			t.Fatalf("build --policy %s: exit %d\n%s", spelling, code, stderr)
		}
		_, revision, _ := strings.Cut(stdout, "revision ")
		revision, _, _ = strings.Cut(revision, ",")
		m, _ := os.ReadFile(mod)
		b, _ := os.ReadFile(tarball)
		if i == 0 {
			want.revision, want.module, want.bundle = revision, string(m), string(b)
			continue
		}
		if revision != want.revision || string(m) != want.module || string(b) != want.bundle {
			t.Errorf("build --policy %s: revision %s (./rego: %s), module same %v, bundle same %v", spelling, revision, want.revision,
				string(m) == want.module, string(b) == want.bundle)
		}
	}
}

// TestBuildFileModes: the module and the bundle are written 0644 less the umask, as any build tool's output,
// replacing what was there.
func TestBuildFileModes(t *testing.T) {
	withoutRace.Delegate(t)
	for _, tt := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o027, 0o640}} {
		old := syscall.Umask(tt.umask)
		dir := t.TempDir()
		mod, tarball := filepath.Join(dir, "precheck.wasm"), filepath.Join(dir, "bundle.tar.gz")
		os.WriteFile(mod, []byte("an older module"), 0o600)
		code, _, stderr := precheck(t, "", "build", "-o", mod, "--bundle", tarball)
		syscall.Umask(old)
		if code != exitAllowed {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		for _, path := range []string{mod, tarball} {
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != tt.want {
				t.Errorf("umask %03o: %s is %v (%v), want %v", tt.umask, filepath.Base(path), st.Mode().Perm(), err, tt.want)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
			t.Errorf("temporary files left behind: %q", left)
		}
	}
}

// An output that cannot be written is exit 2 naming it, and nothing is half-applied: a module whose
// bundle cannot be written is not replaced either, and no temporary file is left.
func TestBuildWriteErrorNamesTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "no-such-dir", "precheck.wasm")
	code, _, stderr := precheck(t, "", "build", "-o", target)
	if code != exitUsage || !strings.Contains(stderr, "cannot write "+target+": ") || strings.Contains(stderr, ".tmp") {
		t.Errorf("exit %d, stderr %q: want an error naming %s", code, stderr, target)
	}
	mod := filepath.Join(dir, "precheck.wasm")
	os.WriteFile(mod, []byte("the old module"), 0o644)
	code, _, stderr = precheck(t, "", "build", "-o", mod, "--bundle", target)
	if code != exitUsage || !strings.Contains(stderr, "cannot write "+target+": ") {
		t.Errorf("unwritable bundle: exit %d, stderr %q", code, stderr)
	}
	if data, _ := os.ReadFile(mod); string(data) != "the old module" {
		t.Errorf("the module was replaced although the bundle could not be written")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

// TestBuildSignedBundle: a bundle signed by `precheck build --signing-key` is accepted by the bundle service
// `precheck serve --bundle-url --bundle-key` runs (its defaults: RS256, key id "default"), and refused with
// another key.
func TestBuildSignedBundle(t *testing.T) {
	withoutRace.Delegate(t)
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	tarball := filepath.Join(dir, "bundle.tar.gz")
	code, stdout, stderr := precheck(t, "", "build", "-o", filepath.Join(dir, "precheck.wasm"), "--bundle", tarball, "--signing-key", keyFile)
	if code != exitAllowed || !strings.Contains(stdout, `signed RS256, key id "default"`) {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(data) }))
	defer bs.Close()
	// As serve.go builds it from --bundle-key, --bundle-key-id and --bundle-key-alg left at their defaults.
	verifyWith := func(pub *rsa.PublicKey) *bundle.VerificationConfig {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"default": {Key: string(pemKey), Algorithm: "RS256"}}, "default", "", nil)
	}
	svc := &server.BundleService{URL: bs.URL, Verify: verifyWith(&key.PublicKey)}
	if _, err := svc.Load(context.Background()); err != nil {
		t.Errorf("the bundle service refuses the signed bundle: %v", err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	svc = &server.BundleService{URL: bs.URL, Verify: verifyWith(&other.PublicKey)}
	if _, err := svc.Load(context.Background()); err == nil {
		t.Error("the bundle service accepts a bundle signed with another key")
	}
	// The signed bundle is still a policy precheck loads from disk.
	code, _, stderr = precheck(t, "", "check", "--input", "../../examples/inputs/allowed-api-example.json", "--policy", tarball, "--no-default", "--engine", "wasm")
	if code != exitAllowed {
		t.Errorf("checking with the signed bundle: exit %d\n%s", code, stderr)
	}
}

func TestBuildSigningFlags(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub.pem")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	priv := filepath.Join(dir, "key.pem")
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	mod := filepath.Join(dir, "precheck.wasm")
	tarball := filepath.Join(dir, "b.tar.gz")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no bundle", []string{"--signing-key", priv}, "--signing-key needs --bundle"},
		{"alg without key", []string{"--bundle", tarball, "--signing-alg", "RS512"}, "--signing-alg needs --signing-key"},
		{"key id without key", []string{"--bundle", tarball, "--signing-key-id", "ci"}, "--signing-key-id needs --signing-key"},
		{"missing key file", []string{"--bundle", tarball, "--signing-key", filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"a public key", []string{"--bundle", tarball, "--signing-key", pub}, "PUBLIC KEY"},
		{"unknown algorithm", []string{"--bundle", tarball, "--signing-key", priv, "--signing-alg", "XX256"}, "XX256"},
		{"RSA key for ES256", []string{"--bundle", tarball, "--signing-key", priv, "--signing-alg", "ES256"}, "ES256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := precheck(t, "", append([]string{"build", "-o", mod}, tt.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q: want exit %d saying %q", code, stderr, exitUsage, tt.want)
			}
			// Flags are checked before anything is built: nothing is written.
			if _, err := os.Stat(mod); !os.IsNotExist(err) {
				t.Errorf("a refused build wrote %s", mod)
			}
		})
	}
}
