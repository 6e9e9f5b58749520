package gate_test

import (
	"errors"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"

	"github.com/precheck/precheck/plugin/dwsfake"
	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/gate"
)

// TestFailOpenDoesNotCoverAnotherProject: the facts client answers for its own project only, so a call
// naming another makes the facts fail; the caller chose that, and a gate failing open must not forward it.
func TestFailOpenDoesNotCoverAnotherProject(t *testing.T) {
	t.Parallel()
	srv, provider := setup(t, "8.3.0.200", "default")
	g := gate.New(nil, newEngine(t), gate.WithFacts(provider), gate.WithFailOpen())
	other, err := srv.DWSClient("0123456789abcdef0123456789abcdef", g)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.EncryptCluster(encryptRequest("generalCipher"))
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode != 503 || se.ErrorCode != gate.CodeFactsFailed {
		t.Errorf("err = %v, want 503 %s", err, gate.CodeFactsFailed)
	}
	if n := srv.Hits(dwsfake.EncryptCluster); n != 0 {
		t.Errorf("a call naming another project reached the server (%d hits) under fail-open", n)
	}
}

// TestForwardedCallForgetsCachedFacts: once the gate has forwarded an encrypt call, the cluster's remembered
// facts are from before it; the next call is decided on fresh ones (here: the cluster is encrypted now).
func TestForwardedCallForgetsCachedFacts(t *testing.T) {
	t.Parallel()
	srv, provider := setup(t, "8.3.0.200", "default")
	g := gate.New(nil, newEngine(t), gate.WithFacts(facts.Cached(provider, time.Minute)))
	client := sdkClient(t, srv, g)
	if _, err := client.EncryptCluster(encryptRequest("generalCipher")); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// The conversion the call started: DWS now reports the cluster encrypted.
	srv.SetEncryption(dwsfake.ExampleClusterID, &dwsfake.Encryption{MasterKeyID: dwsfake.ExampleKeyID, CryptAlgorithm: "generalCipher"})
	_, err := client.EncryptCluster(encryptRequest("generalCipher"))
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) || se.StatusCode/100 != 4 {
		t.Errorf("second call on the encrypted cluster: %v, want a refusal", err)
	}
	if n := srv.Hits(dwsfake.EncryptCluster); n != 1 {
		t.Errorf("%d encrypt calls reached the server, want 1: the second was decided on the facts from before the first", n)
	}
}
