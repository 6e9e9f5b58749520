package dwsapi

import (
	"sync"

	"github.com/precheck/precheck/policy"
)

// snapshot holds the project-wide answers a Config.Snapshot provider asks once: the DR relationships and
// each key's details. A failure is kept as well: every cluster that needs the answer then reports the same
// *Error, rather than asking a failing (or throttling) API again for each of a thousand clusters.
type snapshot struct {
	dr   once[drClusters]
	mu   sync.Mutex
	keys map[string]*once[*policy.Key]
}

// once is one shared answer: the first caller asks, the others wait for its answer.
type once[T any] struct {
	do  sync.Once
	v   T
	err error
}

func (o *once[T]) get(ask func() (T, error)) (T, error) {
	o.do.Do(func() { o.v, o.err = protectValue(ask) })
	return o.v, o.err
}

func protectValue[T any](ask func() (T, error)) (v T, err error) {
	err = protect(func() (err error) {
		v, err = ask()
		return err
	})
	return v, err
}

func (p *Provider) snapshotDR(clusterID string) (*bool, error) {
	if p.snapshot == nil {
		dr, err := p.listDisasterRecoveries()
		return dr.has(clusterID), err
	}
	dr, err := p.snapshot.dr.get(func() (drClusters, error) {
		dr, err := p.listDisasterRecoveries()
		if err != nil {
			return nil, &Error{Fact: FactDRRelationship, Op: "DWS ListDisasterRecover", Err: p.sanitize(err)}
		}
		return dr, nil
	})
	if err != nil {
		return nil, err
	}
	return dr.has(clusterID), nil
}

func (p *Provider) snapshotKey(keyID string) (*policy.Key, error) {
	if p.snapshot == nil {
		return p.describeKey(keyID)
	}
	s := p.snapshot
	s.mu.Lock()
	if s.keys == nil {
		s.keys = map[string]*once[*policy.Key]{}
	}
	o := s.keys[keyID]
	if o == nil {
		o = &once[*policy.Key]{}
		s.keys[keyID] = o
	}
	s.mu.Unlock()
	k, err := o.get(func() (*policy.Key, error) {
		k, err := p.describeKey(keyID)
		if err != nil {
			return nil, &Error{Fact: FactKey, Op: "KMS DescribeKey", Err: p.sanitize(err)}
		}
		return k, nil
	})
	if err != nil {
		return nil, err
	}
	cp := *k // each cluster's facts are its own to change
	return &cp, nil
}
