// Package upstreamtest plays a hostile DWS API in tests of the gate (plugin/gate) and of `precheck serve`
// (plugin/server), in the manner of net/http/httptest.
//
// The gate promises that a call the policy refuses never reaches the API. Whether a request "is" the encrypt
// call, and what it asks for, is not the gate's to say: it is what the servers behind it make of the bytes.
// So this package models them. Every request an upstream receives is read by routers that route a path and
// a method the ways real servers and front ends do (Go's ServeMux, nginx, Tomcat, Spring, IIS, method-override
// and URL-rewrite headers; see Routers) and by body readers that read JSON the ways real servers do (Go's
// encoding/json into the official SDK's EncryptClusterReq, first-wins and last-wins readers, fastjson's smart
// match, declared charsets and content encodings; see Readers). Each (router, reader) pair under which the
// upstream would execute the encrypt call is an Execution. An Oracle builds, for every Execution, the
// canonical input document of the call executed so, and asks the same policy about it: an executed call the
// policy refuses is a Bypass. The test holds no expectation of its own.
//
// The upstream comes in two forms with one behaviour. Server is a raw HTTP/1.1 server on a loopback port.
// Like a naive server it leaves the body of a request it does not execute unread (always that of a GET,
// HEAD, OPTIONS or TRACE), so that those bytes are read as the next request on the connection (CL.0 request
// smuggling) unless the request asked for Connection: close; and like a server that speaks h2c or WebSocket
// it answers an Upgrade with 101 Switching Protocols, after which the connection is a tunnel whose requests
// nothing in front of it reads. Transport is the same upstream as an http.RoundTripper, without a network: it
// writes each request as net/http's Transport would put it on the wire and serves those bytes.
//
//	up := upstreamtest.NewServer()
//	defer up.Close()
//	tr := &http.Transport{}
//	g := gate.New(tr, engine, gate.WithFacts(upstreamtest.Facts()))
//	oracle := &upstreamtest.Oracle{Checker: engine, Facts: upstreamtest.Facts()}
//	for _, c := range upstreamtest.Corpus() {
//		c.Do(ctx, g, up.URL)
//		up.Quiesce(ctx, tr)
//		for _, b := range oracle.Bypasses(ctx, up.Take()) {
//			t.Errorf("%s: %s", c.Name, b)
//		}
//	}
//
// Corpus is a fixed set of attacks, each a refused call that some modelled server executes and a naive
// reading does not see: member names in another letter case or without separators, duplicate members,
// invalid UTF-8, huge numbers, deep nesting, trailing data, declared charsets and encodings, odd paths and
// methods, override and rewrite headers, requests smuggled in bodies or tunnelled through a protocol switch.
// Controls are calls that must get through, so that refusing everything passes no test.
package upstreamtest
