package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"

	"github.com/spf13/cobra"

	dwsregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/region"
	kmsregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/kms/v2/region"

	"github.com/precheck/precheck/plugin/facts/dwsapi"
)

// apiFlags say where `check --from-api` and `fleet --from-api` ask: a region of the SDK's catalogue, or
// explicit endpoints (a private endpoint, a test server). Credentials are deliberately not among them: they
// come only from the SDK's own providers (HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, the profile file, the
// metadata service), so that no secret is ever on a command line, in a shell history or in `ps`.
type apiFlags struct {
	fromAPI     bool
	region      string
	endpoint    string
	kmsEndpoint string
}

func (f *apiFlags) register(cmd *cobra.Command, regionUsage string) {
	fl := cmd.Flags()
	fl.BoolVar(&f.fromAPI, "from-api", false, "gather the facts from the DWS and KMS APIs through the official SDK "+
		"(credentials from the SDK's providers: HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, the profile file, the metadata service)")
	fl.StringVar(&f.region, "region", "", regionUsage)
	fl.StringVar(&f.endpoint, "endpoint", "", "with --from-api: the DWS endpoint URL, instead of the region's (KMS too, unless --kms-endpoint)")
	fl.StringVar(&f.kmsEndpoint, "kms-endpoint", "", "with --from-api: the KMS endpoint URL, when it is not --endpoint's")
}

// given names the first of the flags that only mean something with --from-api, when one is set without it.
func (f *apiFlags) given(cmd *cobra.Command) string {
	for _, name := range []string{"region", "endpoint", "kms-endpoint"} {
		if cmd.Flags().Changed(name) {
			return name
		}
	}
	return ""
}

// plainSegment is what the SDK can put into a URL path unchanged (dwsapi refuses anything else too, but
// as an API failure; on the command line it is a mistake in a flag).
var plainSegment = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

// target is where project is asked about: region (the flag's, or the one a --target names) or the
// endpoints. Everything Connect would refuse for the command line's sake is a usage error here, so that
// what remains of Connect's failures (no credentials) and the calls' are the API's (exit 3).
func (f *apiFlags) target(what, project, region string) (dwsapi.Target, error) {
	t := dwsapi.Target{ProjectID: project, Region: region, Endpoint: f.endpoint, KMSEndpoint: f.kmsEndpoint}
	if project == "" {
		return t, usageError(fmt.Sprintf("--from-api needs %s", what))
	}
	if !plainSegment.MatchString(project) || project == "." || project == ".." {
		return t, usageError(fmt.Sprintf("project ID %.80q: want letters, digits, '-', '_', '.' or '~' (32 lowercase hex characters, as the console shows it)", project))
	}
	for _, e := range []struct{ name, url string }{{"--endpoint", f.endpoint}, {"--kms-endpoint", f.kmsEndpoint}} {
		if e.url == "" {
			continue
		}
		u, err := url.Parse(e.url)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return t, usageError(fmt.Sprintf("%s %.80q: want an http(s) URL, e.g. https://dws.cn-north-4.myhuaweicloud.com", e.name, e.url))
		}
		// A signed call carries the AK, the signature and any security token: over plain HTTP anyone on
		// the path may read and replay them. Plain HTTP is for a local fake or proxy only.
		if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			return t, usageError(fmt.Sprintf("%s %.80q: plain http sends the signed credentials in clear; use https (http is for a loopback address only)", e.name, e.url))
		}
	}
	if f.endpoint == "" {
		if region == "" {
			return t, usageError("--from-api needs --region (the SDK's region name, e.g. cn-north-4) or --endpoint")
		}
		// The SDK's catalogue lookups panic on an unknown name; SafeValueOf recovers. They read the
		// SDK's region environment variables and files too, never the network.
		if _, err := dwsregion.SafeValueOf(region); err != nil {
			return t, usageError(fmt.Sprintf("region %q is not in the SDK's DWS region catalogue (give --endpoint instead)", region))
		}
	}
	if f.endpoint == "" && f.kmsEndpoint == "" {
		if _, err := kmsregion.SafeValueOf(region); err != nil {
			return t, usageError(fmt.Sprintf("region %q is not in the SDK's KMS region catalogue (give --kms-endpoint instead)", region))
		}
	}
	return t, nil
}

// apiFailure is the command's error for a failure to gather facts: precheck could not decide (exit 3), and
// the message names the call and the HTTP status it was answered with (dwsapi's errors do, credentials
// redacted). A request dwsapi refuses to send (a cluster ID that is no plain path segment) is the command
// line's mistake (exit 2).
func apiFailure(err error) error {
	var de *dwsapi.Error
	if errors.As(err, &de) && de.Fact == dwsapi.FactRequest && de.Op == "" &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return usageError(de.Error())
	}
	return fmt.Errorf("could not decide: %w", err)
}

// loopbackHost reports whether host names this machine: localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
