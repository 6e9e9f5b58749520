package dwsapi

import (
	"errors"
	"fmt"

	dwsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dws/v2/model"
)

// FactClusters is the Fact of an *Error from ListClusters: the listing of a project's clusters.
const FactClusters = "clusters"

// ErrIncompleteList marks a ListClusters answer that lists fewer (or more) clusters than its "count" says.
// The API has no paging parameter to ask for the rest (ListClusters takes only enterprise_project_id, and
// the v2 ShowClusters takes nothing), so such an answer cannot be completed: it is an error, never a report
// that silently leaves clusters out.
var ErrIncompleteList = errors.New("incomplete cluster list")

// ListedCluster is one cluster of a ListClusters answer.
type ListedCluster struct {
	ID                  string
	Name                string
	EnterpriseProjectID string
}

// ListClusters lists the clusters of the clients' project (narrowed to Target.EnterpriseProjectID when set),
// in the order the API answers. The API answers one list with its total "count"; an answer whose count
// differs from the clusters it lists fails with ErrIncompleteList, and a cluster listed twice or without an
// ID is an error too. Errors are *Error with Fact FactClusters, credentials redacted.
func ListClusters(c *Clients) ([]ListedCluster, error) {
	p, err := New(Config{DWS: c.DWS})
	if err != nil {
		return nil, err
	}
	fail := func(err error) error {
		return &Error{Fact: FactClusters, Op: "DWS ListClusters", Err: p.sanitize(err)}
	}
	req := &dwsmodel.ListClustersRequest{}
	if eps := c.Target.EnterpriseProjectID; eps != "" {
		req.EnterpriseProjectId = &eps
	}
	var resp *dwsmodel.ListClustersResponse
	if err := protect(func() (err error) {
		resp, err = c.DWS.ListClusters(req)
		return err
	}); err != nil {
		return nil, fail(err)
	}
	if resp.Clusters == nil {
		return nil, fail(errors.New(`the answer has no "clusters"`))
	}
	list := *resp.Clusters
	if resp.Count == nil {
		return nil, fail(fmt.Errorf(`%w: the answer lists %d clusters and has no "count" to check them against`, ErrIncompleteList, len(list)))
	}
	if int(*resp.Count) != len(list) {
		return nil, fail(fmt.Errorf("%w: the answer lists %d clusters of the %d its count says %s has", ErrIncompleteList, len(list), *resp.Count, c.Target))
	}
	out := make([]ListedCluster, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, ci := range list {
		if !pathSegment(ci.Id) {
			return nil, fail(fmt.Errorf("cluster %d of the list has an ID %.80q precheck cannot ask about", i+1, ci.Id))
		}
		if seen[ci.Id] {
			return nil, fail(fmt.Errorf("cluster %s is listed twice", ci.Id))
		}
		seen[ci.Id] = true
		out = append(out, ListedCluster{ID: ci.Id, Name: ci.Name, EnterpriseProjectID: ci.EnterpriseProjectId})
	}
	return out, nil
}
