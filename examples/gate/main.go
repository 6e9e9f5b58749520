// Command gate shows precheck installed in front of the official Huawei Cloud Go SDK's DWS client: the gate
// is the client's HTTP transport, so EncryptCluster is checked before it is sent, and a refusal comes back as
// an ordinary SDK service error.
//
// It talks to the endpoint in DWS_ENDPOINT with the credentials in HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK
// and the project in HUAWEICLOUD_SDK_PROJECT_ID, and takes the guestAgent versions (which the DWS API does
// not report) from the inventory file given as its argument.
//
//	go run ./examples/gate inventory.json
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/policy"
)

// settings is what the program needs from its environment.
type settings struct {
	endpoint, ak, sk, projectID string
	inventory                   string
	clusterID, keyID, algorithm string
}

func main() {
	os.Exit(start(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// start reads the settings and runs the example, returning the exit code: 0 done (converted or refused
// by the gate, as printed), 1 failed, 2 bad usage or missing settings. Settings are checked before the SDK
// sees them: it panics on a credential it cannot use, which is no way to tell a person what to set.
func start(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: gate inventory.json   (with DWS_ENDPOINT, HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK and HUAWEICLOUD_SDK_PROJECT_ID set)")
		return 2
	}
	s := settings{
		endpoint:  getenv("DWS_ENDPOINT"),
		ak:        getenv("HUAWEICLOUD_SDK_AK"),
		sk:        getenv("HUAWEICLOUD_SDK_SK"),
		projectID: getenv("HUAWEICLOUD_SDK_PROJECT_ID"),
		inventory: args[0],
		clusterID: "97cbaab3-939e-4dbc-9187-0fe240f2b9fd",
		keyID:     "0f3196c8-5c23-469f-84da-92ecd2499dce",
		algorithm: "SMcompatible",
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{"DWS_ENDPOINT", s.endpoint}, {"HUAWEICLOUD_SDK_AK", s.ak}, {"HUAWEICLOUD_SDK_SK", s.sk}, {"HUAWEICLOUD_SDK_PROJECT_ID", s.projectID},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		// The names only: a credential's value is never printed.
		fmt.Fprintf(stderr, "gate: set %s: the DWS endpoint and the credentials the SDK signs its calls with\n", strings.Join(missing, ", "))
		return 2
	}
	if err := run(ctx, stdout, s); err != nil {
		fmt.Fprintln(stderr, "gate:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, w io.Writer, s settings) error {
	// 1. The policy engine, once per process.
	p, err := policy.Default()
	if err != nil {
		return err
	}
	engine, err := policy.New(ctx, p)
	if err != nil {
		return err
	}
	defer engine.Close(ctx)

	// 2. Where the facts come from: the DWS API through the SDK, and an inventory for the guestAgent
	// version; cached briefly so that a burst of calls asks the API once.
	factsClient, err := newClient(s, nil)
	if err != nil {
		return err
	}
	inv, err := facts.ReadInventory(s.inventory)
	if err != nil {
		return err
	}
	provider, err := dwsapi.New(dwsapi.Config{DWS: factsClient, Inventory: inv})
	if err != nil {
		return err
	}

	// 3. The gate, as the transport of the client the tool makes its calls with.
	g := gate.New(http.DefaultTransport, engine,
		gate.WithFacts(facts.Cached(provider, 30*time.Second)),
		gate.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	client, err := newClient(s, g)
	if err != nil {
		return err
	}

	// 4. The tool's call, unchanged.
	resp, err := client.EncryptCluster(&model.EncryptClusterRequest{
		ClusterId: s.clusterID,
		Body: &model.EncryptClusterReq{Encrypt: &model.EncryptCluster{
			MasterKeyId: s.keyID, CryptAlgorithm: s.algorithm,
		}},
	})
	var refused *sdkerr.ServiceResponseError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(w, "not converted: %d %s: %s\n", refused.StatusCode, refused.ErrorCode, refused.ErrorMessage)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "conversion submitted: job %s\n", *resp.JobId)
	return nil
}

// newClient builds the SDK's DWS client; a non-nil rt becomes its transport.
func newClient(s settings, rt http.RoundTripper) (*dws.DwsClient, error) {
	httpConfig := config.DefaultHttpConfig().WithTimeout(30 * time.Second)
	if rt != nil {
		httpConfig = httpConfig.WithHttpRoundTripper(rt)
	}
	credential, err := basic.NewCredentialsBuilder().WithAk(s.ak).WithSk(s.sk).WithProjectId(s.projectID).SafeBuild()
	if err != nil {
		return nil, fmt.Errorf("the credentials: %w", err)
	}
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{s.endpoint}).
		WithCredential(credential).
		WithHttpConfig(httpConfig).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	return dws.NewDwsClient(hc), nil
}
