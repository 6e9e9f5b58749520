package dwsfake

import (
	"net/http"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	kms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2"
)

// ClientTimeout is the HTTP timeout of the clients DWSClient and KMSClient build (the SDK's default is 120s).
const ClientTimeout = 10 * time.Second

// HTTPConfig returns the SDK HTTP configuration of the test clients: the SDK defaults with ClientTimeout,
// and, when rt is non-nil, rt as the client's transport (config.HttpConfig.WithHttpRoundTripper).
//
// Note that the SDK ignores the RoundTripper when HttpConfig.HttpTransport is also set: an *http.Transport
// given with WithHttpTransport takes precedence over everything else.
func HTTPConfig(rt http.RoundTripper) *config.HttpConfig {
	c := config.DefaultHttpConfig().WithTimeout(ClientTimeout)
	if rt != nil {
		c = c.WithHttpRoundTripper(rt)
	}
	return c
}

// DWSClient returns an official SDK DWS client (services/dws/v2) that talks to s as project projectID,
// signing with TestAK/TestSK. A non-nil rt is used as the client's http.RoundTripper (e.g. a precheck gate
// wrapping http.DefaultTransport). No region is given, so the SDK makes no IAM or region look-ups.
func (s *Server) DWSClient(projectID string, rt http.RoundTripper) (*dws.DwsClient, error) {
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{s.URL}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(TestAK).WithSk(TestSK).WithProjectId(projectID).Build()).
		WithHttpConfig(HTTPConfig(rt)).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	return dws.NewDwsClient(hc), nil
}

// KMSClient returns an official SDK KMS client (services/kms/v2) that talks to s as project projectID, like
// DWSClient.
func (s *Server) KMSClient(projectID string, rt http.RoundTripper) (*kms.KmsClient, error) {
	hc, err := kms.KmsClientBuilder().
		WithEndpoints([]string{s.URL}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(TestAK).WithSk(TestSK).WithProjectId(projectID).Build()).
		WithHttpConfig(HTTPConfig(rt)).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	return kms.NewKmsClient(hc), nil
}
