// Package upstreamtest plays a hostile DWS API in tests of the gate (plugin/gate) and of `precheck serve`
// (plugin/server), in the manner of net/http/httptest.
//
// The gate promises that a call the policy refuses never reaches the API. Whether a request "is" the encrypt
// call, and what it asks for, is not the gate's to say: it is what the server behind it makes of the bytes.
// So this package models the servers: every request an upstream receives is read by several routers (the way
// Go's ServeMux, nginx, Tomcat, Spring, method-override and URL-rewrite front ends route a path) and several
// body readers (Go's encoding/json into the official SDK's EncryptClusterReq; a first-wins and an exact
// last-wins reader; readers that honour a declared charset). Each (router, reader) pair that would execute
// the encrypt call is an Execution. An Oracle then builds, for every Execution, the canonical input document
// of the call that pair would execute, and asks the same policy about it: an executed call the policy
// refuses is a Bypass.
//
// The upstream comes in two forms with the same behaviour. Server is a raw HTTP/1.1 server on a loopback
// port that reads requests with http.ReadRequest and, like a naive server, leaves the body of a request it
// does not execute unread, so that those bytes are read as the next request on the connection (CL.0 request
// smuggling) unless the request asked for Connection: close. Transport is the same upstream as an
// http.RoundTripper, without a network: it writes the request as net/http's Transport would and serves the
// bytes as Server does.
//
//	up := upstreamtest.NewServer()
//	defer up.Close()
//	tr := &http.Transport{}
//	client := &http.Client{Transport: gate.New(tr, engine, gate.WithFacts(upstreamtest.Facts()))}
//	... send upstreamtest.Corpus() through client ...
//	up.Quiesce(ctx, tr)
//	oracle := &upstreamtest.Oracle{Checker: engine, Facts: upstreamtest.Facts()}
//	for _, b := range oracle.Bypasses(ctx, up.Take()) {
//		t.Error(b)
//	}
//
// Corpus is a deterministic set of requests that real servers read differently from a naive reading (letter
// case, duplicate members, invalid UTF-8, huge numbers, deep nesting, trailing data, declared charsets, odd
// paths and methods, override and rewrite headers, smuggled requests), for differential and fuzz tests.
package upstreamtest
