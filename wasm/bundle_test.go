package wasm

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm/internal/opahost"
)

// defaultCompiled is the default policy compiled by Compile, once per test binary: the bundle tests read
// it, none changes it.
var defaultCompiled = sync.OnceValues(func() (*Module, error) {
	p, err := policy.Default()
	if err != nil {
		return nil, err
	}
	return Compile(context.Background(), p)
})

func compiledDefault(t *testing.T) (*policy.Policy, *Module) {
	t.Helper()
	p, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := defaultCompiled()
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// TestBundleReadByOPA: the bundle WriteBundle writes is read back by OPA's own bundle reader, and its
// manifest's wasm entrypoints are exactly those the module exports.
func TestBundleReadByOPA(t *testing.T) {
	WithoutRace.Delegate(t)
	t.Parallel()
	ctx := context.Background()
	p, m := compiledDefault(t)
	var buf bytes.Buffer
	if err := m.WriteBundle(&buf); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewReader(&buf).Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != p.Revision() {
		t.Errorf("revision %q, want %q", b.Manifest.Revision, p.Revision())
	}
	if len(b.WasmModules) != 1 || b.WasmModules[0].Path != "/policy.wasm" || !bytes.Equal(b.WasmModules[0].Raw, m.Wasm()) {
		t.Fatalf("bundle wasm modules: %d", len(b.WasmModules))
	}
	var manifest []string
	for _, r := range b.Manifest.WasmResolvers {
		if r.Module != "/policy.wasm" {
			t.Errorf("resolver %+v names another module", r)
		}
		manifest = append(manifest, r.Entrypoint)
	}
	host, err := opahost.Load(ctx, b.WasmModules[0].Raw, nil, opahost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	var exported []string
	for name := range host.Entrypoints() {
		exported = append(exported, name)
	}
	slices.Sort(manifest)
	slices.Sort(exported)
	if !slices.Equal(manifest, exported) || !slices.Contains(exported, policy.Entrypoint) {
		t.Errorf("manifest entrypoints %q, module exports %q", manifest, exported)
	}
	if cfg, ok := b.Data["precheck"].(map[string]any)["config"].(map[string]any); !ok || cfg["min_guest_agent_version"] != "8.3.0.200" {
		t.Errorf("bundle data lacks the policy's data: %v", b.Data)
	}
	if want := []string{"dws.version_compare", "dws.version_valid", "time.now_ns", "time.parse_rfc3339_ns"}; !slices.Equal(host.Builtins(), want) {
		t.Errorf("module imports builtins %q, want %q", host.Builtins(), want)
	}
}

// TestBuildIsReproducible: the module and the bundle are the same bytes for the same policy however its path
// is spelt and wherever the directory lies, and nothing of the machine (the path) is in them. Compiling is
// slow under the race detector, so three loads are compiled (the default, a copy elsewhere, an override
// spelt relatively) and every other spelling is held to the same input to the compiler: the same
// revision, and the same bundle (module names, sources and data), which is all Compile reads.
func TestBuildIsReproducible(t *testing.T) {
	WithoutRace.Delegate(t)
	ctx := context.Background()
	abs, err := filepath.Abs("../rego")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "somewhere", "else")
	if err := os.CopyFS(elsewhere, os.DirFS(abs)); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(abs))
	build := func(p *policy.Policy) (module, tarball []byte) {
		m, err := Compile(ctx, p)
		if err != nil {
			t.Error(err)
			return
		}
		var buf bytes.Buffer
		if err := m.WriteBundle(&buf); err != nil {
			t.Error(err)
		}
		return m.Wasm(), buf.Bytes()
	}
	def, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	wantIn := compilerInput(t, def)
	compiled := map[string]bool{"Load(" + elsewhere + ")": true, "LoadWithOverrides(./rego)": true}
	var (
		wg               sync.WaitGroup
		wantMod, wantTar []byte
	)
	wg.Go(func() { wantMod, wantTar = build(def) })
	type built struct {
		name     string
		mod, tar []byte
	}
	results := make(chan built, len(compiled))
	for _, spelling := range []string{"./rego", "rego/", "rego", abs, elsewhere} {
		for loader, load := range map[string]func(string) (*policy.Policy, error){"Load": policy.Load, "LoadWithOverrides": policy.LoadWithOverrides} {
			name := loader + "(" + spelling + ")"
			p, err := load(spelling) // here: the loading resolves relative spellings against the directory
			if err != nil {
				t.Fatal(err)
			}
			if p.Revision() != def.Revision() || compilerInput(t, p) != wantIn {
				t.Errorf("%s: revision %s (want %s), or another bundle for the compiler", name, p.Revision(), def.Revision())
			}
			if compiled[name] {
				wg.Go(func() {
					mod, tar := build(p)
					results <- built{name, mod, tar}
				})
			}
		}
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		if !bytes.Equal(r.mod, wantMod) || !bytes.Equal(r.tar, wantTar) {
			t.Errorf("%s: module same %v, bundle same %v", r.name, bytes.Equal(r.mod, wantMod), bytes.Equal(r.tar, wantTar))
		}
	}
	if n != len(compiled) {
		t.Errorf("%d of the loads to compile were compiled, want %d", n, len(compiled))
	}
	files := gunzip(t, wantTar)
	for _, path := range []string{abs, elsewhere, filepath.Dir(abs)} {
		if bytes.Contains(wantMod, []byte(path)) || bytes.Contains(files, []byte(path)) {
			t.Errorf("the build names %s", path)
		}
	}
}

// compilerInput is what Compile reads of p, as text: its bundle's manifest, data, and module names and sources.
func compilerInput(t *testing.T, p *policy.Policy) string {
	t.Helper()
	b := p.Bundle()
	var out strings.Builder
	manifest, err := json.Marshal(b.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "%s\n%s\n", manifest, data)
	for _, m := range b.Modules {
		fmt.Fprintf(&out, "%s %q %q %d\n%s\n", m.Path, m.URL, m.RelativePath, len(m.Raw), m.Raw)
	}
	return out.String()
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignedBundleReadByOPA: a signed bundle is read by OPA's bundle reader with the public key (as OPA's
// bundle plugin and `opa inspect` read it), and refused with another key or unsigned.
func TestSignedBundleReadByOPA(t *testing.T) {
	WithoutRace.Delegate(t)
	t.Parallel()
	p, m := compiledDefault(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	verify := func(pub any, alg, keyID string) *bundle.VerificationConfig {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		key := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{keyID: {Key: key, Algorithm: alg}}, keyID, "", nil)
	}
	read := func(data []byte, vc *bundle.VerificationConfig) (bundle.Bundle, error) {
		return bundle.NewReader(bytes.NewReader(data)).WithBundleVerificationConfig(vc).Read()
	}
	for _, tt := range []struct {
		name    string
		signing Signing
		verify  *bundle.VerificationConfig
		refused string // "" when the bundle is to be read
	}{
		{"RS256 under the default key id", Signing{Key: rsaPEM}, verify(&rsaKey.PublicKey, "RS256", "default"), ""},
		{"ES256 under a named key", Signing{Key: ecPEM, Algorithm: "ES256", KeyID: "ci"}, verify(&ecKey.PublicKey, "ES256", "ci"), ""},
		{"HS256 secret", Signing{Key: []byte("a shared secret"), Algorithm: "HS256"},
			bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{"default": {Key: "a shared secret", Algorithm: "HS256"}}, "default", "", nil), ""},
		{"another key", Signing{Key: rsaPEM}, verify(&other.PublicKey, "RS256", "default"), "verification"},
		// The key id is not checked against the verifier's: OPA looks up its configured key id first (the
		// token's kid only when none is configured), so a verifier keyed "default" verifies a bundle signed
		// under "old" with the right key, and the key itself is what matters.
		{"another key id, the right key", Signing{Key: rsaPEM, KeyID: "old"}, verify(&rsaKey.PublicKey, "RS256", "default"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := m.WriteSignedBundle(&buf, tt.signing); err != nil {
				t.Fatal(err)
			}
			b, err := read(buf.Bytes(), tt.verify)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("read with err %v, want it refused (%q)", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest.Revision != p.Revision() || len(b.WasmModules) != 1 || !bytes.Equal(b.WasmModules[0].Raw, m.Wasm()) || len(b.Signatures.Signatures) != 1 {
				t.Errorf("signed bundle read back: revision %q, %d wasm modules, %d signatures", b.Manifest.Revision, len(b.WasmModules), len(b.Signatures.Signatures))
			}
		})
	}
	var unsigned bytes.Buffer
	if err := m.WriteBundle(&unsigned); err != nil {
		t.Fatal(err)
	}
	if _, err := read(unsigned.Bytes(), verify(&rsaKey.PublicKey, "RS256", "default")); err == nil {
		t.Error("an unsigned bundle was read with a verification key")
	}
	// Signing is reproducible apart from the signature itself (RSA PKCS #1 v1.5 is deterministic: all of it).
	var a, b bytes.Buffer
	if err := m.WriteSignedBundle(&a, Signing{Key: rsaPEM}); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteSignedBundle(&b, Signing{Key: rsaPEM}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("signing the same bundle with the same RS256 key twice gave different bytes")
	}
}

func TestSigningRefusesBadKeys(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	for _, tt := range []struct {
		name string
		s    Signing
		want string
	}{
		{"no key", Signing{}, "no signing key"},
		{"not PEM", Signing{Key: []byte("not a key")}, "PEM"},
		{"a public key", Signing{Key: pub}, "PUBLIC KEY"},
		{"unknown algorithm", Signing{Key: priv, Algorithm: "XX256"}, "XX256"},
		{"RSA key for ES256", Signing{Key: priv, Algorithm: "ES256"}, "ES256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check() = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
