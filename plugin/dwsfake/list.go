package dwsfake

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
	"golang.org/x/time/rate"
)

// targetKey names one endpoint's calls about one target (see Request.Target).
type targetKey struct {
	e      Endpoint
	target string
}

// take returns a copy of the fault under k, counting one use of it; nil when there is none. Call with s.mu held.
func take[K comparable](faults map[K]*Fault, k K) *Fault {
	f := faults[k]
	if f == nil {
		return nil
	}
	cp := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(faults, k)
		}
	}
	return &cp
}

// target is what a request is about, for FailFor: the path's cluster, the key DescribeKey's body names, or
// the project of a project-wide listing.
func target(e Endpoint, r *http.Request, body []byte) string {
	switch e {
	case DescribeKey:
		var b struct {
			KeyID string `json:"key_id"`
		}
		_ = json.Unmarshal(body, &b)
		return b.KeyID
	case ListClusters, ListDisasterRecover:
		return r.PathValue("project_id")
	}
	return r.PathValue("cluster_id")
}

// FailFor makes endpoint e answer with f for the requests about target only, until HealFor or for f.Times
// requests: target is the cluster ID for the calls about a cluster (ListClusterDetails,
// ShowClusterEncryptInfo, EncryptCluster), the key ID for DescribeKey, the project ID for ListClusters and
// ListDisasterRecover. Such a fault stands before one set with Fail.
func (s *Server) FailFor(e Endpoint, target string, f Fault) {
	f.Body = bytes.Clone(f.Body)
	f.Header = f.Header.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targetFaults[targetKey{e, target}] = &f
}

// HealFor removes the fault FailFor set for e and target.
func (s *Server) HealFor(e Endpoint, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.targetFaults, targetKey{e, target})
}

// Throttling says which requests the fake answers as the API gateway answers a caller over its rate limit:
// HTTP 429, a Retry-After header, and {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has
// been reached: ..."}. A throttled request reaches no handler and uses up no fault.
type Throttling struct {
	// Endpoints are the endpoints throttled; empty: all.
	Endpoints []Endpoint
	// Every, when positive, throttles every Every-th request to the endpoints (1: all of them).
	Every int
	// RequestsPerSecond, when positive, throttles the requests beyond a token bucket of that rate and Burst
	// (default 1), as the gateway's limit does.
	RequestsPerSecond float64
	Burst             int
	// RetryAfter is sent as Retry-After in whole seconds, rounded up; 0 sends "0" (retry at once) and a
	// negative value sends no header.
	RetryAfter time.Duration
	// Status (default 429), ErrorCode (default CodeThrottled) and ErrorMsg override the answer.
	Status    int
	ErrorCode string
	ErrorMsg  string
}

type throttling struct {
	endpoints map[Endpoint]bool
	every     int
	n         int
	limiter   *rate.Limiter
	status    int
	header    string
	body      []byte
}

// hit counts one request to e and says whether it is throttled. Call with s.mu held.
func (t *throttling) hit(e Endpoint) bool {
	if len(t.endpoints) > 0 && !t.endpoints[e] {
		return false
	}
	t.n++
	if t.every > 0 && t.n%t.every == 0 {
		return true
	}
	return t.limiter != nil && !t.limiter.Allow()
}

func (t *throttling) answer(w http.ResponseWriter) {
	if t.header != "" {
		w.Header().Set("Retry-After", t.header)
	}
}

// Throttle switches throttling on (replacing any earlier Throttling).
func (s *Server) Throttle(t Throttling) {
	th := &throttling{endpoints: map[Endpoint]bool{}, every: t.Every, status: t.Status}
	for _, e := range t.Endpoints {
		th.endpoints[e] = true
	}
	if t.RequestsPerSecond > 0 {
		th.limiter = rate.NewLimiter(rate.Limit(t.RequestsPerSecond), max(1, t.Burst))
	}
	if th.status == 0 {
		th.status = http.StatusTooManyRequests
	}
	if t.RetryAfter >= 0 {
		th.header = strconv.Itoa(int(math.Ceil(t.RetryAfter.Seconds())))
	}
	code, msg := t.ErrorCode, t.ErrorMsg
	if code == "" {
		code = CodeThrottled
	}
	if msg == "" {
		limit := "1"
		if t.RequestsPerSecond > 0 {
			limit = strconv.FormatFloat(t.RequestsPerSecond, 'f', -1, 64)
		}
		msg = "The throttling threshold has been reached: policy user over ratelimit,limit:" + limit + ",time:1 second"
	}
	th.body = errorBody("", code, msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = th
}

// Unthrottle switches throttling off.
func (s *Server) Unthrottle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = nil
}

// Throttled returns how many requests were answered by Throttle (since the last ResetRecords).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Throttled {
			n++
		}
	}
	return n
}

// SetListLimit makes ListClusters answer at most n clusters while its "count" still says how many the project
// has (n <= 0: no limit), as a server that cuts a list short would: a client must not take that for the whole.
func (s *Server) SetListLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listLimit = n
}

// Clusters returns copies of the clusters the fake knows, in the order they were first put.
func (s *Server) Clusters() []Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Cluster, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, copyCluster(s.clusters[id]))
	}
	return out
}

// Key returns a copy of the key the fake knows by id.
func (s *Server) Key(id string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return Key{}, false
	}
	cp := *k
	cp.Raw = bytes.Clone(k.Raw)
	return cp, true
}

// DisasterRecoveries returns copies of the DR relationships the fake knows.
func (s *Server) DisasterRecoveries() []DisasterRecovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.drs)
}

func copyCluster(c *Cluster) Cluster {
	cp := *c
	cp.ActionProgress = maps.Clone(c.ActionProgress)
	cp.Tags = slices.Clone(c.Tags)
	cp.Omit = slices.Clone(c.Omit)
	cp.Raw = bytes.Clone(c.Raw)
	if c.Encryption != nil {
		e := *c.Encryption
		cp.Encryption = &e
	}
	return cp
}

// Enterprise-project values of ListClusters' enterprise_project_id the API documents besides an ID.
const (
	AllGrantedEnterpriseProjects = "all_granted_eps"
	DefaultEnterpriseProject     = "0"
)

// listClusters answers ListClusters: the project's clusters (those with no ProjectID are in every project),
// filtered by enterprise_project_id when given ("all_granted_eps": all; "0": the default project, which a
// cluster with no enterprise project is in), in ClusterInfo's shape, with "count" the number that matched.
func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, rec *Request) {
	project := r.PathValue("project_id")
	eps, filter := r.URL.Query()["enterprise_project_id"]
	s.mu.Lock()
	var matched []Cluster
	for _, id := range s.order {
		c := s.clusters[id]
		if c.ProjectID != "" && c.ProjectID != project {
			continue
		}
		if filter && eps[0] != AllGrantedEnterpriseProjects {
			inEPS := c.EnterpriseProjectID
			if inEPS == "" {
				inEPS = DefaultEnterpriseProject
			}
			if inEPS != eps[0] {
				continue
			}
		}
		matched = append(matched, copyCluster(c))
	}
	limit := s.listLimit
	s.mu.Unlock()

	count := len(matched)
	if limit > 0 && len(matched) > limit {
		matched = matched[:limit]
	}
	infos := make([]json.RawMessage, 0, len(matched))
	for i := range matched {
		b, err := json.Marshal(clusterInfo(&matched[i]))
		if err != nil {
			s.writeError(w, rec, http.StatusInternalServerError, errorBody(rec.Endpoint, "FAKE.0500", "fake: "+err.Error()))
			return
		}
		infos = append(infos, b)
	}
	s.writeJSON(w, rec, map[string]any{"clusters": infos, "count": count})
}

// clusterInfo renders c in ListClusters' ClusterInfo shape: the members ClusterDetail shares with it.
func clusterInfo(c *Cluster) any {
	if c.Raw != nil {
		return c.Raw
	}
	d := clusterDetail(c)
	info := dwsmodel.ClusterInfo{
		Id:                  d.Id,
		Name:                d.Name,
		Status:              d.Status,
		Version:             d.Version,
		Updated:             d.Updated,
		Created:             d.Created,
		Port:                d.Port,
		Endpoints:           d.Endpoints,
		Nodes:               d.Nodes,
		Tags:                d.Tags,
		UserName:            d.UserName,
		NumberOfNode:        d.NumberOfNode,
		RecentEvent:         d.RecentEvent,
		AvailabilityZone:    d.AvailabilityZone,
		EnterpriseProjectId: d.EnterpriseProjectId,
		NodeType:            d.NodeType,
		VpcId:               d.VpcId,
		SubnetId:            d.SubnetId,
		PublicEndpoints:     d.PublicEndpoints,
		ActionProgress:      d.ActionProgress,
		SubStatus:           d.SubStatus,
		TaskStatus:          d.TaskStatus,
		SecurityGroupId:     d.SecurityGroupId,
	}
	return info
}

// GenerateClusters returns n made-up clusters spread over projects in turn, deterministic in i: mostly
// ready ones, with every tenth one on an old version, every seventeenth busy, every twenty-third encrypted,
// every thirty-first in another enterprise project. It is for fleet tests: PutCluster each (1,000 cost a
// few hundred kilobytes).
func GenerateClusters(n int, projects ...string) []Cluster {
	if len(projects) == 0 {
		projects = []string{ExampleProjectID}
	}
	out := make([]Cluster, n)
	for i := range out {
		c := Cluster{
			ProjectID:           projects[i%len(projects)],
			ID:                  GeneratedClusterID(i),
			Name:                "dws-fleet-" + strconv.Itoa(i),
			Version:             "8.1.3.310",
			Status:              "AVAILABLE",
			SubStatus:           "NORMAL",
			ActionProgress:      map[string]string{},
			Tags:                []Tag{{Key: "env", Value: []string{"prod", "test", "dev"}[i%3]}},
			EnterpriseProjectID: DefaultEnterpriseProject,
		}
		if i%10 == 9 {
			c.Version = "7.3.0.100"
		}
		if i%17 == 16 {
			c.TaskStatus, c.ActionProgress = "SNAPSHOTTING", map[string]string{"SNAPSHOTTING": "20%"}
		}
		if i%23 == 22 {
			c.Encryption = &Encryption{MasterKeyID: ExampleKeyID, MasterKeyName: ExampleKeyName, CryptAlgorithm: "generalCipher"}
		}
		if i%31 == 30 {
			c.EnterpriseProjectID = "aca4e50a-266f-4786-827c-f8d6cc3fbada"
		}
		out[i] = c
	}
	return out
}

// GeneratedClusterID is the ID GenerateClusters gives cluster i.
func GeneratedClusterID(i int) string {
	return "c0ffee00-0000-4000-8000-" + strconv.FormatInt(int64(100000000000+i), 10)
}
