package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

// BenchmarkGate measures the gate's overhead per allowed call: the official SDK's EncryptCluster against an
// in-process upstream, without the gate and with it (static facts), side by side in one run.
func BenchmarkGate(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"job_id": "2c9080d08cc99d28018ccd139e942498"}`))
	}))
	defer upstream.Close()
	client := func(rt http.RoundTripper) *dws.DwsClient {
		hc, err := dws.DwsClientBuilder().
			WithEndpoints([]string{upstream.URL}).
			WithCredential(basic.NewCredentialsBuilder().WithAk(dwsfake.TestAK).WithSk(dwsfake.TestSK).WithProjectId(project).Build()).
			WithHttpConfig(dwsfake.HTTPConfig(rt)).
			SafeBuild()
		if err != nil {
			b.Fatal(err)
		}
		return dws.NewDwsClient(hc)
	}
	p, err := policy.Default()
	if err != nil {
		b.Fatal(err)
	}
	wasmEngine, err := policy.New(context.Background(), p, policy.WithBackend(wasm.Backend(wasm.Config{})))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"direct", http.DefaultTransport},
		{"gate-rego", gate.New(http.DefaultTransport, newEngine(b), gate.WithFacts(exampleFacts("8.3.0.200")))},
		{"gate-wasm", gate.New(http.DefaultTransport, wasmEngine, gate.WithFacts(exampleFacts("8.3.0.200")))},
	} {
		sdk := client(c.rt)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := sdk.EncryptCluster(encryptRequest("generalCipher")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
