package dwsapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/provider"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	dwsregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/region"
	kms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2"
	kmsregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2/region"
)

// Target is where one project's clusters are asked about: the project, and the region (by its name in the
// SDK's region catalogue, e.g. "cn-north-4") or explicit endpoints.
type Target struct {
	ProjectID string
	// Region is a region of the SDK's catalogue (services/dws/v2/region, services/kms/v2/region), which
	// also reads HUAWEICLOUD_SDK_REGION_DWS_<REGION> and the SDK's region files for regions it does not list.
	Region string
	// Endpoint, when set, is the DWS endpoint (e.g. https://dws.cn-north-4.myhuaweicloud.com) and the
	// KMS endpoint too unless KMSEndpoint is set; it overrides Region for the service it names.
	Endpoint    string
	KMSEndpoint string
	// EnterpriseProjectID narrows ListClusters to one enterprise project ("all_granted_eps": every one the
	// caller may see; "0": the default one); empty: the API's default listing.
	EnterpriseProjectID string
}

func (t Target) String() string {
	where := t.Region
	if t.Endpoint != "" {
		where = t.Endpoint
	}
	s := "project " + t.ProjectID + " in " + where
	if t.EnterpriseProjectID != "" {
		s += " (enterprise project " + t.EnterpriseProjectID + ")"
	}
	return s
}

// Clients are the SDK clients of one Target, sending through one Transport.
type Clients struct {
	Target Target
	DWS    *dws.DwsClient
	KMS    *kms.KmsClient
}

// credentials finds the credential the SDK's standard providers know: the environment
// (HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN, ...), the profile file
// (~/.huaweicloud/credentials or HUAWEICLOUD_SDK_CREDENTIALS_FILE), the ECS metadata service, the pod identity.
// precheck takes no credential from its own flags or files, so it never holds one the SDK would not.
var credentials = func() (auth.ICredential, error) {
	return provider.BasicCredentialProviderChain().GetCredentials()
}

// Connect builds the DWS and KMS clients of t with the credentials of the SDK's standard providers, every
// request going through tr. The credential is used for t.ProjectID whatever project the provider names.
func Connect(t Target, tr *Transport) (*Clients, error) {
	if !pathSegment(t.ProjectID) {
		return nil, fmt.Errorf("dwsapi: %s: the project ID %.80q is empty or not a plain path segment", t, t.ProjectID)
	}
	if t.Region == "" && t.Endpoint == "" {
		return nil, fmt.Errorf("dwsapi: %s: give a region or an endpoint", t)
	}
	if tr == nil {
		return nil, errors.New("dwsapi: Connect needs a Transport")
	}
	cred, err := credentials()
	if err != nil {
		// The providers' errors name the variables and files they looked at, never a credential's value.
		return nil, fmt.Errorf("dwsapi: no credentials from the SDK's providers (environment HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, the profile file, the metadata service): %s",
			strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
	}
	basic, ok := cred.(*auth.BasicCredentials)
	if !ok || basic == nil {
		return nil, fmt.Errorf("dwsapi: the SDK's providers gave a %T credential, not an AK/SK one for a project", cred)
	}
	// A copy per project: the provider's credential may name another project, or none.
	perProject := *basic
	perProject.ProjectId = t.ProjectID

	// The Transport bounds each attempt; the client itself gets no overall timeout, which would cut the
	// retries of a throttled call short.
	hc := config.DefaultHttpConfig().WithTimeout(0).WithHttpRoundTripper(tr)

	dwsBuilder := dws.DwsClientBuilder().WithCredential(&perProject).WithHttpConfig(hc)
	if t.Endpoint != "" {
		dwsBuilder = dwsBuilder.WithEndpoints([]string{t.Endpoint})
	} else {
		r, err := catalogue("DWS", t.Region, dwsregion.SafeValueOf)
		if err != nil {
			return nil, err
		}
		dwsBuilder = dwsBuilder.WithRegion(r)
	}
	dc, err := dwsBuilder.SafeBuild()
	if err != nil {
		return nil, fmt.Errorf("dwsapi: %s: building the DWS client: %v", t, err)
	}

	kmsCred := perProject
	kmsBuilder := kms.KmsClientBuilder().WithCredential(&kmsCred).WithHttpConfig(hc)
	switch {
	case t.KMSEndpoint != "":
		kmsBuilder = kmsBuilder.WithEndpoints([]string{t.KMSEndpoint})
	case t.Endpoint != "":
		kmsBuilder = kmsBuilder.WithEndpoints([]string{t.Endpoint})
	default:
		r, err := catalogue("KMS", t.Region, kmsregion.SafeValueOf)
		if err != nil {
			return nil, err
		}
		kmsBuilder = kmsBuilder.WithRegion(r)
	}
	kc, err := kmsBuilder.SafeBuild()
	if err != nil {
		return nil, fmt.Errorf("dwsapi: %s: building the KMS client: %v", t, err)
	}
	return &Clients{Target: t, DWS: dws.NewDwsClient(dc), KMS: kms.NewKmsClient(kc)}, nil
}

func catalogue(service, name string, lookup func(string) (*region.Region, error)) (*region.Region, error) {
	r, err := lookup(name)
	if err != nil || r == nil {
		return nil, fmt.Errorf("dwsapi: region %q is not in the SDK's %s region catalogue (give an endpoint instead)", name, service)
	}
	return r, nil
}
