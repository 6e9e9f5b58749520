package main

import (
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
	"github.com/spf13/cobra"

	"github.com/precheck/precheck/plugin/facts"
	"github.com/precheck/precheck/plugin/facts/dwsapi"
	"github.com/precheck/precheck/plugin/redact"
	"github.com/precheck/precheck/plugin/server"
	"github.com/precheck/precheck/policy"
	"github.com/precheck/precheck/wasm"
)

func newServeCmd(e *env) *cobra.Command {
	var (
		pf                                     policyFlags
		addr, bundleURL, bundleKey             string
		bundleKeyID, bundleKeyAlg              string
		upstream, inventoryPath, decisionLog   string
		inventoryFormat                        string
		factsAPI, failOpen                     bool
		maxBody                                int64
		maxInFlight, maxConns                  int
		bundlePoll, headerTimeout, bodyTimeout time.Duration
		drain, runawayLimit                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve decisions over HTTP, and the gate as a proxy in front of the DWS API",
		Long: `Serve decisions over HTTP (POST /v1/precheck: an input document, or OPA's {"input": ...}
envelope, in; the decision out), health (/healthz, /readyz) and Prometheus metrics (/metrics). With
--upstream, it is also the gate as a reverse proxy in front of the DWS API: a refused encrypt call is
answered in the API's error shape and never forwarded.

The policy is the embedded default, --policy (watched, and reloaded on change or SIGHUP), or an OPA
bundle service (--bundle-url, polled with ETag; a failed poll is logged and retried with exponential
backoff). A reload that fails keeps the last good policy.

SIGTERM or SIGINT drains the requests in flight (--drain) and exits 0.

Exit codes: 0 stopped, 2 bad usage (or an address that cannot be listened on), 3 a policy that does not
load.`,
		Example: `  precheck serve --addr 127.0.0.1:8181 --policy my-overrides --decision-log -
  precheck serve --bundle-url https://bundles.example/precheck.tar.gz --bundle-key pub.pem
  precheck serve --upstream https://dws.example.com --inventory clusters.yaml --facts-from-api`,
		Args: noArgs("serve takes flags only"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			// The server takes 0 for its default: a 0 given here (meant, perhaps, as "no limit") would
			// silently be the default, so it is refused instead.
			for _, f := range []struct {
				name     string
				positive bool
			}{{"max-body", maxBody > 0}, {"max-in-flight", maxInFlight > 0}, {"max-conns-per-client", maxConns > 0},
				{"read-header-timeout", headerTimeout > 0}, {"body-read-timeout", bodyTimeout > 0}} {
				if !f.positive {
					return usageError(fmt.Sprintf("--%s must be positive", f.name))
				}
			}
			if factsAPI && upstream == "" {
				return usageError("--facts-from-api gathers the facts of proxied calls: it needs --upstream")
			}
			if inventoryPath != "" && upstream == "" {
				return usageError("--inventory gives the facts of proxied calls: it needs --upstream")
			}
			if runawayLimit <= 0 {
				return usageError("--wasm-runaway-limit must be positive")
			}
			logger := slog.New(slog.NewTextHandler(e.stderr, nil))
			if _, err := pf.backend(wasm.Config{}); err != nil {
				return err
			}
			// A backend per policy load: the server asks for one each time it loads or reloads a policy.
			backend := func() policy.Backend {
				b, _ := pf.backend(wasm.Config{RunawayLimit: runawayLimit, Logger: logger}) // the engine is checked above
				return b
			}

			cfg := server.Config{Backend: backend, Logger: logger, FailOpen: failOpen, MaxBodyBytes: maxBody, MaxInFlight: maxInFlight,
				MaxConnsPerClient: maxConns, ReadHeaderTimeout: headerTimeout, BodyReadTimeout: bodyTimeout}
			keyFlags := cmd.Flags().Changed("bundle-key") || cmd.Flags().Changed("bundle-key-id") || cmd.Flags().Changed("bundle-key-alg")
			switch {
			case bundleURL != "" && pf.path != "":
				return usageError("give --policy or --bundle-url, not both")
			// A key that checked nothing would be worse than none: whoever set it believes the policy signed.
			case bundleURL == "" && keyFlags:
				return usageError("--bundle-key verifies the bundles --bundle-url serves; a --policy directory or file is read as it is, unverified")
			case keyFlags && bundleKey == "": // an empty --bundle-key "$KEY", or a key id without a key
				return usageError("--bundle-key is empty: bundles would be served unverified")
			case bundleURL != "":
				svc := &server.BundleService{URL: bundleURL, Interval: bundlePoll, Logger: logger}
				if bundleKey != "" {
					pem, err := os.ReadFile(bundleKey)
					if err != nil {
						return usageError("--bundle-key: " + err.Error())
					}
					svc.Verify = bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
						bundleKeyID: {Key: string(pem), Algorithm: bundleKeyAlg},
					}, bundleKeyID, "", nil)
				}
				cfg.Source = svc
			default:
				var paths []string
				if pf.path != "" {
					paths = []string{pf.path}
				}
				cfg.Source = &server.Files{Read: pf.load, Paths: paths, Name: policySourceName(pf)}
			}
			if upstream != "" {
				u, err := url.Parse(upstream)
				if err != nil || u.Scheme == "" || u.Host == "" {
					return usageError(fmt.Sprintf("--upstream %q is not an absolute URL", upstream))
				}
				cfg.Upstream = u
				provider, err := factsProvider(e, inventoryPath, inventoryFormat, factsAPI, upstream)
				if err != nil {
					return err
				}
				cfg.Facts = provider
			}
			if decisionLog != "" {
				w, closeLog, err := openLog(e, decisionLog)
				if err != nil {
					return usageError("--decision-log: " + err.Error())
				}
				defer closeLog()
				cfg.DecisionLog = w
			}

			s, err := server.New(ctx, cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usageError(err.Error())
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
							logger.Warn("policy reload on SIGHUP failed; the last good policy keeps serving", "error", redact.Text(err.Error(), nil))
						}
					}
				}
			}()
			fmt.Fprintf(e.stdout, "precheck serving on http://%s\n", ln.Addr())
			return s.Serve(ctx, ln, drain)
		},
	}
	pf.register(cmd, "rego")
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8181", "address to listen on")
	f.StringVar(&bundleURL, "bundle-url", "", "load the policy from this OPA bundle service URL instead (polled with ETag)")
	durationFlag(cmd, &bundlePoll, "bundle-poll", 30*time.Second, "how often to poll --bundle-url")
	f.StringVar(&bundleKey, "bundle-key", "", "PEM public key: bundles from --bundle-url must be signed with it (OPA bundle signatures)")
	f.StringVar(&bundleKeyID, "bundle-key-id", "default", "the key id bundles are signed under")
	f.StringVar(&bundleKeyAlg, "bundle-key-alg", "RS256", "the signing algorithm")
	f.StringVar(&upstream, "upstream", "", "the DWS API endpoint: act as the gate in front of it (refused calls are never forwarded)")
	f.StringVar(&inventoryPath, "inventory", "", "with --upstream: facts for proxied calls, an inventory file (JSON, YAML or CSV)")
	choiceFlag(cmd, &inventoryFormat, "inventory-format", "inventory format", "", inventoryFormats,
		"the inventory's format (default: from the file's extension, else its content)")
	f.BoolVar(&factsAPI, "facts-from-api", false, "with --upstream: also gather facts from the DWS API there through the SDK "+
		"(credentials from HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_PROJECT_ID)")
	f.BoolVar(&failOpen, "fail-open", false, "forward a proxied call when its facts cannot be gathered (default: refuse)")
	f.StringVar(&decisionLog, "decision-log", "", "write the decision log (JSON lines) to this file, or - for stdout")
	f.Int64Var(&maxBody, "max-body", int64(policy.DefaultLimits.MaxBytes), "largest request body, in bytes; larger are answered 413")
	f.IntVar(&maxInFlight, "max-in-flight", server.DefaultMaxInFlight, "most requests served at once, their bodies read; more are answered 503")
	f.IntVar(&maxConns, "max-conns-per-client", server.DefaultMaxConnsPerClient, "most connections one client IP address may hold open; "+
		"more are closed at once (behind a load balancer, every client has its address: raise it)")
	durationFlag(cmd, &headerTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "how long a client may take to send a request's headers")
	durationFlag(cmd, &runawayLimit, "wasm-runaway-limit", wasm.DefaultRunawayLimit, "with --engine wasm: how long one decision may run the policy's fast code before the watchdog takes its instance out of the pool and switches the policy to the interruptible code (logged, in /readyz and the metrics)")
	durationFlag(cmd, &bodyTimeout, "body-read-timeout", server.DefaultBodyReadTimeout, "how long a client may take to send a request's body; "+
		"slower are answered 408 (no request holds an in-flight slot while its body arrives)")
	durationFlag(cmd, &drain, "drain", 30*time.Second, "on shutdown, how long requests in flight may take to finish")
	return cmd
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
func factsProvider(e *env, inventoryPath, format string, fromAPI bool, endpoint string) (facts.Provider, error) {
	var inv facts.Provider
	if inventoryPath != "" {
		i, err := readInventory(e, inventoryPath, format)
		if err != nil {
			return nil, usageError(err.Error())
		}
		inv = i.Inventory
	}
	if !fromAPI {
		return inv, nil
	}
	ak, sk, project := e.env("HUAWEICLOUD_SDK_AK"), e.env("HUAWEICLOUD_SDK_SK"), e.env("HUAWEICLOUD_SDK_PROJECT_ID")
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
