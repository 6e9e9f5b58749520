// Package rego holds precheck's default policy: one Rego file per concern, the thresholds and tenant
// classes in data.json, and a Rego unit test beside every file. The files are embedded into every binary
// so that the default policy needs nothing on disk.
package rego

import "embed"

// FS is the default policy bundle: *.rego (tests included) and data.json at its root.
//
//go:embed *.rego data.json
var FS embed.FS
