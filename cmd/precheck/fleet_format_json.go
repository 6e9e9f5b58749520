package main

import "io"

// fleetJSON writes the report as it is, for machines; it reads back into fleetReport unchanged.
type fleetJSON struct{}

func (fleetJSON) writeFleet(w io.Writer, r *fleetReport, _ bool) error { return writeJSON(w, r) }
