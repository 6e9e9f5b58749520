// Package fleet gathers and decides many clusters at once: the library behind `precheck fleet --from-api`
// and `precheck fleet --compare-policy`.
//
// Gather lists the clusters of one or more projects and regions (DWS ListClusters), gathers each one's facts
// through plugin/facts/dwsapi concurrently, under one rate limit and with retries on throttling, fills what
// the API lacks from an inventory, and returns one Result per listed cluster, in a stable order: its entry,
// or why it could not be gathered. A cluster is never dropped, and one that could not be gathered is never
// ready.
//
// Compare decides every entry under two policies and reports the clusters whose verdict differs, with the
// rules that make the difference.
//
//	g, err := fleet.Gather(ctx, fleet.Config{
//		Targets: []dwsapi.Target{{ProjectID: project, Region: "cn-north-4"}},
//		Encrypt: policy.Encrypt{CryptAlgorithm: "SMcompatible", MasterKeyID: keyID},
//		Policy:  dwsapi.CallPolicy{RequestsPerSecond: 20},
//	})
//	impact, err := fleet.Compare(ctx, current, proposed, g.Entries(), call, 4)
package fleet
