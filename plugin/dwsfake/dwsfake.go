// Package dwsfake is a fake Huawei Cloud GaussDB(DWS) and KMS endpoint for tests, in the manner of
// net/http/httptest: New starts a local HTTP server that speaks the real request paths and JSON shapes of the
// calls precheck guards or gathers facts with, as the official Go SDK (github.com/huaweicloud/huaweicloud-sdk-go-v3,
// services/dws/v2 and services/kms/v2) sends and reads them:
//
//	POST /v2/{project_id}/clusters/{cluster_id}/encrypt      EncryptCluster          {"job_id": "..."}
//	GET  /v1.0/{project_id}/clusters/{cluster_id}            ListClusterDetails      {"cluster": {...}}
//	GET  /v1/{project_id}/clusters/{cluster_id}/encrypt-info ShowClusterEncryptInfo  {"master_key_id": ...} or {}
//	GET  /v2/{project_id}/disaster-recoveries                ListDisasterRecover     {"disaster_recovery": [...]}
//	GET  /v1.0/{project_id}/clusters                         ListClusters            {"clusters": [...], "count": N}
//	POST /v1.0/{project_id}/kms/describe-key                 DescribeKey (SDK: ListKeyDetail) {"key_info": {...}}
//
// A test says what the fake knows (PutCluster, PutKey, AddDisasterRecovery, or SeedExample for the API page's
// example), points an SDK client at URL (DWSClient, KMSClient), and afterwards looks at what reached the server
// (Hits, Requests, EncryptCalls: body bytes and headers, including the SDK's signing headers). Fail injects
// faults per endpoint: an HTTP error in the API's error shape, or a delay past a client's timeout; FailFor
// injects them for one cluster (or key, or project) only; Throttle answers some requests as the API gateway
// does when a caller is over its rate limit (429, Retry-After, APIGW.0308).
//
// ListClusters does not page: neither API version (GET /v1.0/{project_id}/clusters, the SDK's ListClusters, nor
// GET /v2/{project_id}/clusters, ShowClusters) has an offset, limit or marker parameter; v1.0 takes only
// enterprise_project_id. The fake answers every cluster of the project in one list, as the documented API does,
// and SetListLimit makes it answer fewer than its "count" says, to test that a client refuses an incomplete list.
//
// Errors are answered in the shapes the real services use: DWS answers {"error_code": "DWS.xxxx", "error_msg":
// "..."}, KMS answers {"error": {"error_code": "KMS.xxxx", "error_msg": "..."}}, the API gateway answers
// {"error_code": "APIGW.xxxx", "error_msg": "..."}. Every answer carries an X-Request-Id header.
//
// Requests must carry the SDK's signing headers (Authorization and X-Sdk-Date); the fake records them but does
// not verify signatures. A Server is safe for concurrent use.
package dwsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
)

// The API page's example values, and a credential for test clients.
const (
	ExampleProjectID = "89cd04f168b84af6be287f71730fdb4b"
	ExampleClusterID = "97cbaab3-939e-4dbc-9187-0fe240f2b9fd"
	ExampleKeyID     = "0f3196c8-5c23-469f-84da-92ecd2499dce"
	ExampleKeyName   = "KMS-1abd-1016"
	ExampleJobID     = "2c9080d08cc99d28018ccd139e942498"

	// TestAK and TestSK are the made-up access key pair DWSClient and KMSClient sign with. They are not
	// secrets, but tests use them to check that credentials never leak into errors or logs.
	TestAK = "PRECHECKFAKEAK0000001"
	TestSK = "PrecheckFakeSecretKeyNotASecret0000000001"
)

// Endpoint names one of the API operations the fake serves.
type Endpoint string

// The endpoints. DescribeKey is KMS's name for the call; the Go SDK calls it ListKeyDetail.
const (
	EncryptCluster         Endpoint = "EncryptCluster"
	ListClusterDetails     Endpoint = "ListClusterDetails"
	ShowClusterEncryptInfo Endpoint = "ShowClusterEncryptInfo"
	ListDisasterRecover    Endpoint = "ListDisasterRecover"
	DescribeKey            Endpoint = "DescribeKey"
	ListClusters           Endpoint = "ListClusters"
)

// Endpoints lists every endpoint the fake serves.
var Endpoints = []Endpoint{EncryptCluster, ListClusterDetails, ShowClusterEncryptInfo, ListDisasterRecover, DescribeKey, ListClusters}

// Error codes the fake answers with. The DWS and KMS codes are the services' documented ones; the APIGW codes
// are the API gateway's.
const (
	CodeNotFound      = "DWS.0015" // resource not found or permission denied
	CodeBadParameter  = "DWS.0001" // incorrect parameter
	CodeEmptyRequest  = "DWS.0006" // empty request
	CodeKeyNotFound   = "KMS.0207" // the key does not exist
	CodeKeyMissingArg = "KMS.0204" // the request lacks required parameters
	CodeAuthFailed    = "APIGW.0301"
	CodeNoSuchAPI     = "APIGW.0101"
	// CodeThrottled is the API gateway's answer to a caller over its rate limit (HTTP 429), with the message
	// "The throttling threshold has been reached". Some services' documentation spells it APIG.0308.
	CodeThrottled = "APIGW.0308"
)

// Cluster is what the fake knows about one cluster. The zero values of the detail fields are answered as
// empty strings, as the real API does for an idle cluster (task_status "", action_progress {}).
type Cluster struct {
	// ProjectID is the project the cluster lives in; a request naming another project gets "not found".
	// Empty: the cluster is found in any project.
	ProjectID string
	ID        string

	Name                string
	Version             string // e.g. "8.1.3.310"
	Status              string // AVAILABLE, ACTIVE, CREATING, FAILED, FROZEN, ...
	SubStatus           string // NORMAL, READONLY, REDISTRIBUTING, DEGRADED, ...
	TaskStatus          string // "" when idle; SNAPSHOTTING, GROWING, REBOOTING, ...
	ActionProgress      map[string]string
	Tags                []Tag
	EnterpriseProjectID string

	// Omit names members of the "cluster" object to leave out of the ListClusterDetails answer, to model
	// an API that does not return them (e.g. "task_status").
	Omit []string
	// Raw, when non-nil, is answered verbatim as the "cluster" member of ListClusterDetails; the detail
	// fields above are then ignored.
	Raw json.RawMessage

	// Encryption is the cluster's encryption info; nil is an ordinary cluster (ShowClusterEncryptInfo
	// answers {}).
	Encryption *Encryption
}

// Tag is a cluster tag.
type Tag struct{ Key, Value string }

// Encryption is what ShowClusterEncryptInfo answers for an encrypted cluster.
type Encryption struct {
	MasterKeyID       string
	MasterKeyName     string
	CryptAlgorithm    string // generalCipher or SMcompatible
	LastRotateKeyTime string
}

// Key is what the fake's KMS knows about a key.
type Key struct {
	ID    string
	Alias string
	// State: "1" pending activation, "2" enabled, "3" disabled, "4" pending deletion, "5" pending import.
	State string
	Spec  string // AES_256, SM4, RSA_2048, ...
	// Raw, when non-nil, is answered verbatim as "key_info"; the fields above (but ID) are then ignored.
	Raw json.RawMessage
}

// DisasterRecovery is a DR relationship between two clusters, as ListDisasterRecover lists it.
type DisasterRecovery struct {
	// ProjectID is the project whose listing shows the relationship; empty: every project's.
	ProjectID        string
	ID               string
	Name             string
	Status           string // e.g. "running"
	PrimaryClusterID string
	StandbyClusterID string
}

// Fault is what an endpoint answers instead of its normal answer, set with Fail.
type Fault struct {
	// Delay is waited before answering (less if the client goes away or the server closes). With Status 0
	// the normal answer follows the delay.
	Delay time.Duration
	// Status, when non-zero, is answered with an error body: Body if set, else the endpoint's error shape
	// with ErrorCode and ErrorMsg (defaults: "FAKE.<status>" and "injected fault: <status text>").
	Status    int
	ErrorCode string
	ErrorMsg  string
	Body      []byte
	// Header is added to the answer (e.g. to override X-Request-Id).
	Header http.Header
	// Times is how many requests the fault applies to; 0 means until Heal.
	Times int
	// Echo appends the request's headers (signing headers included) to the error message, as a careless
	// server or proxy would: for tests that credentials never reach an error a client shows.
	Echo bool
}

// Request is one request that reached the fake.
type Request struct {
	Endpoint  Endpoint // empty for a path the fake does not serve
	Method    string
	Path      string
	RawQuery  string
	ProjectID string
	ClusterID string
	Header    http.Header // as received, signing headers included
	Body      []byte      // the exact bytes received
	RequestID string      // the X-Request-Id the fake answered with
	// Target is what FailFor matches: the cluster ID of a cluster's call, the key ID of DescribeKey, the
	// project ID of ListClusters and ListDisasterRecover.
	Target    string
	Received  time.Time // when the request arrived
	Throttled bool      // answered by Throttle
	Status    int       // the status the fake answered with; 0 while the answer is still pending
	JobID     string    // for an accepted EncryptCluster call, the job_id answered
}

// Server is a fake DWS + KMS endpoint. Create it with New; Close it when done.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:port, to use as an SDK endpoint.
	URL string

	ts      *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu             sync.Mutex
	clusters       map[string]*Cluster
	order          []string // cluster IDs in the order first put: the order ListClusters answers
	listLimit      int
	targetFaults   map[targetKey]*Fault
	throttle       *throttling
	keys           map[string]*Key
	drs            []DisasterRecovery
	hits           map[Endpoint]int
	requests       []*Request
	faults         map[Endpoint]*Fault
	seq            int
	jobs           int
	drSeq          int
	notFoundStatus int
	requireSigning bool
}

// New starts a fake server that knows no clusters or keys.
func New() *Server {
	s := &Server{
		closing:        make(chan struct{}),
		clusters:       map[string]*Cluster{},
		keys:           map[string]*Key{},
		hits:           map[Endpoint]int{},
		faults:         map[Endpoint]*Fault{},
		targetFaults:   map[targetKey]*Fault{},
		notFoundStatus: http.StatusNotFound,
		requireSigning: true,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/{project_id}/clusters/{cluster_id}/encrypt", s.serve(EncryptCluster, s.encrypt))
	mux.HandleFunc("GET /v1.0/{project_id}/clusters/{cluster_id}", s.serve(ListClusterDetails, s.clusterDetails))
	mux.HandleFunc("GET /v1/{project_id}/clusters/{cluster_id}/encrypt-info", s.serve(ShowClusterEncryptInfo, s.encryptInfo))
	mux.HandleFunc("GET /v2/{project_id}/disaster-recoveries", s.serve(ListDisasterRecover, s.disasterRecoveries))
	mux.HandleFunc("POST /v1.0/{project_id}/kms/describe-key", s.serve(DescribeKey, s.describeKey))
	mux.HandleFunc("GET /v1.0/{project_id}/clusters", s.serve(ListClusters, s.listClusters))
	mux.HandleFunc("/", s.serve("", func(w http.ResponseWriter, r *http.Request, rec *Request) {
		s.writeError(w, rec, http.StatusNotFound, errorBody("", CodeNoSuchAPI, "The API does not exist or has not been published in the environment"))
	}))
	s.ts = httptest.NewServer(mux)
	s.URL = s.ts.URL
	return s
}

// Close stops delayed answers and shuts the server down.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// SetNotFoundStatus sets the HTTP status of the DWS.0015 answer for an unknown cluster (default 404). The
// API page lists 404 for "not found"; the DWS error-code table gives DWS.0015 as 403 ("resource not found or
// permission denied"). Either is realistic.
func (s *Server) SetNotFoundStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notFoundStatus = status
}

// SetRequireSigning says whether requests without the SDK's signing headers (Authorization, X-Sdk-Date) are
// refused with 401 APIGW.0301, as the real gateway does (default true).
func (s *Server) SetRequireSigning(require bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireSigning = require
}

// ExampleCluster returns the API page's example cluster in the example project: AVAILABLE, sub-status
// NORMAL, version 8.1.3.310, idle (task_status "", action_progress {}), tagged env=prod, enterprise project
// "0", not encrypted. Change what a test needs and PutCluster it.
func ExampleCluster() Cluster {
	return Cluster{
		ProjectID:           ExampleProjectID,
		ID:                  ExampleClusterID,
		Name:                "dws-demo",
		Version:             "8.1.3.310",
		Status:              "AVAILABLE",
		SubStatus:           "NORMAL",
		TaskStatus:          "",
		ActionProgress:      map[string]string{},
		Tags:                []Tag{{Key: "env", Value: "prod"}},
		EnterpriseProjectID: "0",
	}
}

// ExampleKey returns the API page's example KMS key: KMS-1abd-1016, enabled ("2"), AES_256.
func ExampleKey() Key {
	return Key{ID: ExampleKeyID, Alias: ExampleKeyName, State: "2", Spec: "AES_256"}
}

// SeedExample makes the fake know ExampleCluster and ExampleKey (and no DR relationship).
func (s *Server) SeedExample() {
	s.PutCluster(ExampleCluster())
	s.PutKey(ExampleKey())
}

// PutCluster adds or replaces a cluster (by ID). The fake keeps a copy.
func (s *Server) PutCluster(c Cluster) {
	c = copyCluster(&c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.clusters[c.ID]; !known {
		s.order = append(s.order, c.ID)
	}
	s.clusters[c.ID] = &c
}

// RemoveCluster forgets a cluster.
func (s *Server) RemoveCluster(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.clusters[id]; known {
		delete(s.clusters, id)
		s.order = slices.DeleteFunc(s.order, func(o string) bool { return o == id })
	}
}

// SetEncryption sets (nil: clears) a known cluster's encryption info. It reports whether the cluster is known.
func (s *Server) SetEncryption(clusterID string, e *Encryption) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[clusterID]
	if !ok {
		return false
	}
	if e != nil {
		cp := *e
		e = &cp
	}
	c.Encryption = e
	return true
}

// PutKey adds or replaces a KMS key (by ID). The fake keeps a copy.
func (s *Server) PutKey(k Key) {
	k.Raw = bytes.Clone(k.Raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.ID] = &k
}

// RemoveKey forgets a KMS key.
func (s *Server) RemoveKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, id)
}

// AddDisasterRecovery adds a running DR relationship between two clusters, visible in every project, and
// returns its ID.
func (s *Server) AddDisasterRecovery(primaryClusterID, standbyClusterID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drSeq++
	id := fmt.Sprintf("c1a7a1e8-0000-4000-8000-%012d", s.drSeq)
	s.drs = append(s.drs, DisasterRecovery{ID: id, Name: fmt.Sprintf("dr-%d", s.drSeq), Status: "running",
		PrimaryClusterID: primaryClusterID, StandbyClusterID: standbyClusterID})
	return id
}

// PutDisasterRecovery adds or replaces (by ID) a DR relationship.
func (s *Server) PutDisasterRecovery(dr DisasterRecovery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.drs {
		if s.drs[i].ID == dr.ID {
			s.drs[i] = dr
			return
		}
	}
	s.drs = append(s.drs, dr)
}

// RemoveDisasterRecoveries forgets every DR relationship.
func (s *Server) RemoveDisasterRecoveries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drs = nil
}

// Fail makes endpoint e answer with f (see Fault) until Heal, or for f.Times requests.
func (s *Server) Fail(e Endpoint, f Fault) {
	f.Body = bytes.Clone(f.Body)
	f.Header = f.Header.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[e] = &f
}

// Heal removes endpoint e's fault.
func (s *Server) Heal(e Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, e)
}

// Hits returns how many requests endpoint e received (faulted and refused ones included).
func (s *Server) Hits(e Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[e]
}

// Requests returns copies of every request received so far, in order of arrival.
func (s *Server) Requests() []Request {
	return s.requestsOf(func(*Request) bool { return true })
}

// EncryptCalls returns copies of the EncryptCluster requests received so far, in order of arrival.
func (s *Server) EncryptCalls() []Request {
	return s.requestsOf(func(r *Request) bool { return r.Endpoint == EncryptCluster })
}

func (s *Server) requestsOf(keep func(*Request) bool) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if keep(r) {
			cp := *r
			cp.Header = r.Header.Clone()
			cp.Body = bytes.Clone(r.Body)
			out = append(out, cp)
		}
	}
	return out
}

// ResetRecords forgets the hit counts and recorded requests (not the clusters, keys or faults).
func (s *Server) ResetRecords() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits = map[Endpoint]int{}
	s.requests = nil
}

// handler answers one request of an endpoint; rec is its record (body already read).
type handler func(w http.ResponseWriter, r *http.Request, rec *Request)

const maxBody = 1 << 20

// serve records the request, checks the signing headers, applies the endpoint's fault, and runs h.
func (s *Server) serve(e Endpoint, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		s.mu.Lock()
		s.seq++
		rec := &Request{
			Endpoint:  e,
			Method:    r.Method,
			Path:      r.URL.Path,
			RawQuery:  r.URL.RawQuery,
			ProjectID: r.PathValue("project_id"),
			ClusterID: r.PathValue("cluster_id"),
			Header:    r.Header.Clone(),
			Body:      body,
			RequestID: fmt.Sprintf("fake%028x", s.seq),
			Target:    target(e, r, body),
			Received:  time.Now(),
		}
		s.requests = append(s.requests, rec)
		if e != "" {
			s.hits[e]++
		}
		requireSigning := s.requireSigning
		var fault *Fault
		throttle := s.throttle
		throttled := e != "" && throttle != nil && throttle.hit(e)
		if throttled {
			rec.Throttled = true
		} else if e != "" {
			// A fault for this target stands before the endpoint's: it is the more specific. A throttled
			// request never reaches the service, so it uses up no fault.
			if fault = take(s.targetFaults, targetKey{e, rec.Target}); fault == nil {
				fault = take(s.faults, e)
			}
		}
		s.mu.Unlock()

		w.Header().Set("X-Request-Id", rec.RequestID)
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")

		if fault != nil && fault.Delay > 0 {
			t := time.NewTimer(fault.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				s.setStatus(rec, 0, "")
				return
			case <-s.closing:
				t.Stop()
				s.writeError(w, rec, http.StatusServiceUnavailable, errorBody(e, "FAKE.0503", "fake server closing"))
				return
			}
		}
		if requireSigning && e != "" && (r.Header.Get("Authorization") == "" || r.Header.Get("X-Sdk-Date") == "") {
			s.writeError(w, rec, http.StatusUnauthorized, errorBody("", CodeAuthFailed,
				"Incorrect IAM authentication information: the request is not signed (Authorization or X-Sdk-Date missing)"))
			return
		}
		if throttled {
			// The gateway throttles before the service sees the call, so a throttled call is not faulted.
			throttle.answer(w)
			s.write(w, rec, throttle.status, throttle.body)
			return
		}
		if fault != nil && fault.Status != 0 {
			for k, v := range fault.Header {
				w.Header()[k] = v
			}
			b := fault.Body
			if b == nil {
				code, msg := fault.ErrorCode, fault.ErrorMsg
				if code == "" {
					code = fmt.Sprintf("FAKE.%04d", fault.Status)
				}
				if msg == "" {
					msg = "injected fault: " + http.StatusText(fault.Status)
				}
				if fault.Echo {
					msg += "; request headers: " + echoHeaders(r.Header)
				}
				b = errorBody(e, code, msg)
			}
			s.writeError(w, rec, fault.Status, b)
			return
		}
		h(w, r, rec)
	}
}

// errorBody is the error shape of the service behind endpoint e: KMS nests it under "error".
func errorBody(e Endpoint, code, msg string) []byte {
	var v any = map[string]string{"error_code": code, "error_msg": msg}
	if e == DescribeKey {
		v = map[string]any{"error": v}
	}
	b, _ := json.Marshal(v)
	return b
}

func (s *Server) writeError(w http.ResponseWriter, rec *Request, status int, body []byte) {
	s.write(w, rec, status, body)
}

func (s *Server) writeJSON(w http.ResponseWriter, rec *Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, rec, http.StatusInternalServerError, errorBody(rec.Endpoint, "FAKE.0500", "fake: "+err.Error()))
		return
	}
	s.write(w, rec, http.StatusOK, b)
}

func (s *Server) write(w http.ResponseWriter, rec *Request, status int, body []byte) {
	s.setStatus(rec, status, "")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) setStatus(rec *Request, status int, jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Status = status
	if jobID != "" {
		rec.JobID = jobID
	}
}

// cluster returns a copy of the cluster the request names, or answers "not found" and returns nil.
func (s *Server) cluster(w http.ResponseWriter, r *http.Request, rec *Request) *Cluster {
	s.mu.Lock()
	c, ok := s.clusters[r.PathValue("cluster_id")]
	status := s.notFoundStatus
	var cp Cluster
	if ok {
		cp = *c
		cp.ActionProgress = maps.Clone(c.ActionProgress)
		cp.Tags = slices.Clone(c.Tags)
		if c.Encryption != nil {
			e := *c.Encryption
			cp.Encryption = &e
		}
	}
	s.mu.Unlock()
	if !ok || (cp.ProjectID != "" && cp.ProjectID != r.PathValue("project_id")) {
		s.writeError(w, rec, status, errorBody(rec.Endpoint, CodeNotFound,
			"The cluster does not exist or you do not have the permission to access it."))
		return nil
	}
	return &cp
}

func (s *Server) encrypt(w http.ResponseWriter, r *http.Request, rec *Request) {
	c := s.cluster(w, r, rec)
	if c == nil {
		return
	}
	if len(bytes.TrimSpace(rec.Body)) == 0 {
		s.writeError(w, rec, http.StatusBadRequest, errorBody(rec.Endpoint, CodeEmptyRequest, "The request is empty."))
		return
	}
	var body struct {
		Encrypt *struct {
			MasterKeyID    any `json:"master_key_id"`
			CryptAlgorithm any `json:"crypt_algorithm"`
		} `json:"encrypt"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil || body.Encrypt == nil {
		s.writeError(w, rec, http.StatusBadRequest, errorBody(rec.Endpoint, CodeBadParameter, "Incorrect parameter: encrypt."))
		return
	}
	if id, ok := body.Encrypt.MasterKeyID.(string); !ok || id == "" {
		s.writeError(w, rec, http.StatusBadRequest, errorBody(rec.Endpoint, CodeBadParameter, "Incorrect parameter: master_key_id."))
		return
	}
	if alg, ok := body.Encrypt.CryptAlgorithm.(string); !ok || alg == "" {
		s.writeError(w, rec, http.StatusBadRequest, errorBody(rec.Endpoint, CodeBadParameter, "Incorrect parameter: crypt_algorithm."))
		return
	}
	s.mu.Lock()
	s.jobs++
	jobID := ExampleJobID
	if s.jobs > 1 {
		jobID = fmt.Sprintf("%s%08x", ExampleJobID[:24], s.jobs)
	}
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"job_id": jobID})
	s.setStatus(rec, http.StatusOK, jobID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (s *Server) clusterDetails(w http.ResponseWriter, r *http.Request, rec *Request) {
	c := s.cluster(w, r, rec)
	if c == nil {
		return
	}
	var detail json.RawMessage
	if c.Raw != nil {
		detail = c.Raw
	} else {
		b, err := json.Marshal(clusterDetail(c))
		if err != nil {
			s.writeError(w, rec, http.StatusInternalServerError, errorBody(rec.Endpoint, "FAKE.0500", "fake: "+err.Error()))
			return
		}
		if len(c.Omit) > 0 {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(b, &m)
			for _, k := range c.Omit {
				delete(m, k)
			}
			b, _ = json.Marshal(m)
		}
		detail = b
	}
	s.writeJSON(w, rec, map[string]json.RawMessage{"cluster": detail})
}

// clusterDetail renders c in the SDK's ClusterDetail shape, with plausible values for what c does not say.
func clusterDetail(c *Cluster) dwsmodel.ClusterDetail {
	name := c.Name
	if name == "" {
		name = "dws-" + strings.SplitN(c.ID, "-", 2)[0]
	}
	tags := make([]dwsmodel.Tags, 0, len(c.Tags))
	for _, t := range c.Tags {
		tags = append(tags, dwsmodel.Tags{Key: t.Key, Value: t.Value})
	}
	progress := c.ActionProgress
	if progress == nil {
		progress = map[string]string{}
	}
	connect := name + ".dws.myhuaweicloud.com:8000"
	jdbc := "jdbc:postgresql://" + connect + "/<YOUR_DATABASE_NAME>"
	return dwsmodel.ClusterDetail{
		Id:                  c.ID,
		Name:                name,
		Status:              c.Status,
		Version:             c.Version,
		Updated:             "2024-01-10T08:12:31",
		Created:             "2023-11-02T03:45:10",
		Port:                8000,
		Endpoints:           []dwsmodel.Endpoints{{ConnectInfo: &connect, JdbcUrl: &jdbc}},
		Nodes:               []dwsmodel.Nodes{{Id: "node-1", Status: "200"}, {Id: "node-2", Status: "200"}, {Id: "node-3", Status: "200"}},
		Tags:                tags,
		UserName:            "dbadmin",
		NumberOfNode:        3,
		RecentEvent:         0,
		AvailabilityZone:    "cn-north-4a",
		EnterpriseProjectId: c.EnterpriseProjectID,
		VpcId:               "85b20d7e-9eb7-4b2a-98f3-3c8843ea3574",
		SubnetId:            "4b6b8d3c-2b0f-4c3f-8d68-3c7e3d6a4f2e",
		PublicEndpoints:     []dwsmodel.PublicEndpoints{},
		ActionProgress:      progress,
		SubStatus:           c.SubStatus,
		TaskStatus:          c.TaskStatus,
		NodeType:            "dws.m3.xlarge",
		NodeTypeId:          "ebe532d6-665f-40e6-a4d4-3c51545b6a0a",
		SecurityGroupId:     "d3d0d5e1-3a1b-4b57-9d7e-6f0c2f0d1e33",
		PrivateIp:           []string{"192.168.0.10", "192.168.0.11", "192.168.0.12"},
	}
}

func (s *Server) encryptInfo(w http.ResponseWriter, r *http.Request, rec *Request) {
	c := s.cluster(w, r, rec)
	if c == nil {
		return
	}
	if c.Encryption == nil {
		s.writeJSON(w, rec, struct{}{})
		return
	}
	e := c.Encryption
	id := "e2f4c9a0-0000-4000-8000-" + fmt.Sprintf("%012x", len(c.ID))
	s.writeJSON(w, rec, dwsmodel.ShowClusterEncryptInfoResponse{
		Id:                &id,
		ClusterId:         &c.ID,
		MasterKeyId:       &e.MasterKeyID,
		MasterKeyName:     &e.MasterKeyName,
		LastRotateKeyTime: &e.LastRotateKeyTime,
		CryptAlgorithm:    &e.CryptAlgorithm,
	})
}

func (s *Server) disasterRecoveries(w http.ResponseWriter, r *http.Request, rec *Request) {
	q := r.URL.Query()
	project := r.PathValue("project_id")
	s.mu.Lock()
	drs := slices.Clone(s.drs)
	s.mu.Unlock()
	list := []dwsmodel.DisasterRecovery{}
	for _, dr := range drs {
		if dr.ProjectID != "" && dr.ProjectID != project {
			continue
		}
		if v := q.Get("primary_cluster_id"); v != "" && v != dr.PrimaryClusterID {
			continue
		}
		if v := q.Get("standby_cluster_id"); v != "" && v != dr.StandbyClusterID {
			continue
		}
		if v := q.Get("id"); v != "" && v != dr.ID {
			continue
		}
		dr := dr
		drType := "az"
		list = append(list, dwsmodel.DisasterRecovery{
			Id:                 &dr.ID,
			Name:               &dr.Name,
			Status:             &dr.Status,
			DrType:             &drType,
			PrimaryClusterId:   &dr.PrimaryClusterID,
			StandbyClusterId:   &dr.StandbyClusterID,
			PrimaryClusterRole: ptr("primary"),
			StandbyClusterRole: ptr("standby"),
		})
	}
	s.writeJSON(w, rec, map[string]any{"disaster_recovery": list})
}

func (s *Server) describeKey(w http.ResponseWriter, r *http.Request, rec *Request) {
	var body struct {
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil || body.KeyID == "" {
		s.writeError(w, rec, http.StatusBadRequest, errorBody(DescribeKey, CodeKeyMissingArg, "The request message lacks required parameters."))
		return
	}
	s.mu.Lock()
	k, ok := s.keys[body.KeyID]
	var cp Key
	if ok {
		cp = *k
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, rec, http.StatusNotFound, errorBody(DescribeKey, CodeKeyNotFound, "The key does not exist."))
		return
	}
	if cp.Raw != nil {
		s.writeJSON(w, rec, map[string]json.RawMessage{"key_info": cp.Raw})
		return
	}
	// The KMS key_info shape (services/kms/v2/model KeyDetails); every member is a string.
	s.writeJSON(w, rec, map[string]any{"key_info": map[string]string{
		"key_id":                    cp.ID,
		"domain_id":                 "b168fe00ff56492495a7d22974df2d0b",
		"key_alias":                 cp.Alias,
		"realm":                     "cn-north-4",
		"key_spec":                  cp.Spec,
		"key_usage":                 "ENCRYPT_DECRYPT",
		"key_description":           "",
		"creation_date":             "1700000000000",
		"scheduled_deletion_date":   "",
		"key_state":                 cp.State,
		"default_key_flag":          "0",
		"key_type":                  "1",
		"expiration_time":           "",
		"origin":                    "kms",
		"key_rotation_enabled":      "false",
		"sys_enterprise_project_id": "0",
		"keystore_id":               "0",
	}})
}

func ptr[T any](v T) *T { return &v }

// echoHeaders renders h as "Name: value" pairs in name order.
func echoHeaders(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s; ", k, v)
		}
	}
	return b.String()
}
