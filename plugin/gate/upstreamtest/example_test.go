package upstreamtest_test

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/precheck/precheck/plugin/gate/upstreamtest"
)

// A GET whose body is a whole encrypt call: the upstream answers the GET, leaves its body unread, and
// reads the body as the next request on the connection, which it executes.
func ExampleTransport() {
	call := upstreamtest.Case{Method: "POST", Target: "/v2/" + upstreamtest.DefaultProject + "/clusters/" + upstreamtest.Cluster + "/encrypt",
		Body: []byte(`{"encrypt":{"crypt_algorithm":"generalCipher","master_key_id":"` + upstreamtest.OtherKey + `"}}`)}
	up := upstreamtest.NewTransport()
	req, _ := http.NewRequest("GET", "http://dws.test/v1.0/"+upstreamtest.DefaultProject+"/clusters/"+upstreamtest.Cluster, bytes.NewReader(call.Raw("dws.test")))
	resp, err := up.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	for _, r := range up.Take() {
		fmt.Printf("%s smuggled=%v executed=%v\n", r.Method, r.Smuggled, r.Executed())
	}
	// Output:
	// GET smuggled=false executed=false
	// POST smuggled=true executed=true
}
