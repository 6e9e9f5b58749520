package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	dws "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
)

func init() {
	verbs["serve"] = verb{summary: "serve decisions over HTTP, and the gate as a proxy in front of the DWS API", run: runServe}
}

func runServe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("precheck serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var pf policyFlags
	pf.register(fs, "rego")
	addr := fs.String("addr", "127.0.0.1:8181", "address to listen on")
	bundleURL := fs.String("bundle-url", "", "load the policy from this OPA bundle service URL instead (polled with ETag)")
	bundlePoll := fs.Duration("bundle-poll", 30*time.Second, "how often to poll --bundle-url")
	bundleKey := fs.String("bundle-key", "", "PEM public key: bundles must be signed with it (OPA bundle signatures)")
	bundleKeyID := fs.String("bundle-key-id", "default", "the key id bundles are signed under")
	bundleKeyAlg := fs.String("bundle-key-alg", "RS256", "the signing algorithm")
	upstream := fs.String("upstream", "", "the DWS API endpoint: act as the gate in front of it (refused calls are never forwarded)")
	inventory := fs.String("inventory", "", "facts for proxied calls: an inventory file (JSON or CSV)")
	factsAPI := fs.Bool("facts-from-api", false, "also gather facts from the DWS API at --upstream through the SDK "+
		"(credentials from HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_PROJECT_ID)")
	failOpen := fs.Bool("fail-open", false, "forward a proxied call when its facts cannot be gathered (default: refuse)")
	decisionLog := fs.String("decision-log", "", "write the decision log (JSON lines) to this file, or - for stdout")
	maxBody := fs.Int64("max-body", int64(policy.DefaultLimits.MaxBytes), "largest request body, in bytes; larger are answered 413")
	maxInFlight := fs.Int("max-in-flight", server.DefaultMaxInFlight, "most requests served at once, their bodies read; more are answered 503")
	maxConns := fs.Int("max-conns-per-client", server.DefaultMaxConnsPerClient, "most connections one client IP address may hold open; "+
		"more are closed at once (behind a load balancer, every client has its address: raise it)")
	headerTimeout := fs.Duration("read-header-timeout", server.DefaultReadHeaderTimeout, "how long a client may take to send a request's headers")
	bodyTimeout := fs.Duration("body-read-timeout", server.DefaultBodyReadTimeout, "how long a client may take to send a request's body; "+
		"slower are answered 408 (no request holds an in-flight slot while its body arrives)")
	drain := fs.Duration("drain", 30*time.Second, "on shutdown, how long requests in flight may take to finish")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	// The server takes 0 for its default: a 0 given here (meant, perhaps, as "no limit") would silently be
	// the default, so it is refused instead.
	for _, f := range []struct {
		name     string
		positive bool
	}{{"max-body", *maxBody > 0}, {"max-in-flight", *maxInFlight > 0}, {"max-conns-per-client", *maxConns > 0},
		{"read-header-timeout", *headerTimeout > 0}, {"body-read-timeout", *bodyTimeout > 0}} {
		if !f.positive {
			return fail(e, usageError(fmt.Sprintf("--%s must be positive", f.name)))
		}
	}
	backend, ok := backends[pf.engine]
	if !ok {
		return fail(e, usageError(fmt.Sprintf("unknown engine %q (want %s)", pf.engine, engineNames())))
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))

	cfg := server.Config{Backend: backend, Logger: logger, FailOpen: *failOpen, MaxBodyBytes: *maxBody, MaxInFlight: *maxInFlight,
		MaxConnsPerClient: *maxConns, ReadHeaderTimeout: *headerTimeout, BodyReadTimeout: *bodyTimeout}
	switch {
	case *bundleURL != "" && pf.path != "":
		return fail(e, usageError("give --policy or --bundle-url, not both"))
	case *bundleURL != "":
		svc := &server.BundleService{URL: *bundleURL, Interval: *bundlePoll}
		if *bundleKey != "" {
			pem, err := os.ReadFile(*bundleKey)
			if err != nil {
				return fail(e, usageError("--bundle-key: "+err.Error()))
			}
			svc.Verify = bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
				*bundleKeyID: {Key: string(pem), Algorithm: *bundleKeyAlg},
			}, *bundleKeyID, "", nil)
		}
		cfg.Source = svc
	default:
		var paths []string
		if pf.path != "" {
			paths = []string{pf.path}
		}
		cfg.Source = &server.Files{Read: pf.load, Paths: paths, Name: policySourceName(pf)}
	}
	if *upstream != "" {
		u, err := url.Parse(*upstream)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fail(e, usageError(fmt.Sprintf("--upstream %q is not an absolute URL", *upstream)))
		}
		cfg.Upstream = u
		provider, err := factsProvider(*inventory, *factsAPI, *upstream)
		if err != nil {
			return fail(e, err)
		}
		cfg.Facts = provider
	}
	if *decisionLog != "" {
		w, closeLog, err := openLog(e, *decisionLog)
		if err != nil {
			return fail(e, usageError("--decision-log: "+err.Error()))
		}
		defer closeLog()
		cfg.DecisionLog = w
	}

	s, err := server.New(ctx, cfg)
	if err != nil {
		return fail(e, err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(e, usageError(err.Error()))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := s.Reload(ctx); err != nil {
					logger.Warn("policy reload on SIGHUP failed; the last good policy keeps serving", "error", err)
				}
			}
		}
	}()
	fmt.Fprintf(e.stdout, "precheck serving on http://%s\n", ln.Addr())
	if err := s.Serve(ctx, ln, *drain); err != nil {
		return fail(e, err)
	}
	return exitAllowed
}

func policySourceName(pf policyFlags) string {
	switch {
	case pf.path == "":
		return "embedded default"
	case pf.noDefault:
		return pf.path
	default:
		return "embedded default + " + pf.path
	}
}

// factsProvider gathers facts for proxied calls: from the inventory, and, if asked, from the DWS API (the
// inventory then fills what the API does not report, such as the guestAgent version).
func factsProvider(inventory string, fromAPI bool, endpoint string) (facts.Provider, error) {
	var inv facts.Provider
	if inventory != "" {
		i, err := facts.ReadInventory(inventory)
		if err != nil {
			return nil, usageError(err.Error())
		}
		inv = i
	}
	if !fromAPI {
		return inv, nil
	}
	ak, sk, project := os.Getenv("HUAWEICLOUD_SDK_AK"), os.Getenv("HUAWEICLOUD_SDK_SK"), os.Getenv("HUAWEICLOUD_SDK_PROJECT_ID")
	if ak == "" || sk == "" || project == "" {
		return nil, usageError("--facts-from-api needs HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK and HUAWEICLOUD_SDK_PROJECT_ID")
	}
	hc, err := dws.DwsClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(project).Build()).
		WithHttpConfig(config.DefaultHttpConfig().WithTimeout(10 * time.Second)).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	client := dws.NewDwsClient(hc)
	p, err := dwsapi.New(dwsapi.Config{DWS: client, Inventory: inv})
	if err != nil {
		return nil, err
	}
	return facts.Cached(p, 30*time.Second), nil
}

func openLog(e *env, path string) (io.Writer, func(), error) {
	if path == "-" {
		return e.stdout, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}
