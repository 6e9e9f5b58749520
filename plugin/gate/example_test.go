package gate_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/precheck/precheck/plugin/gate"
	"github.com/precheck/precheck/policy"
)

// The observer sees every call the gate checked or refused. A call refused for its form (here a body that
// says it is not JSON) is the caller's doing: Refused, with no decision, where a failure of the facts or of
// the policy is precheck's.
func ExampleWithObserver() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("the upstream was called") // never, here
	}))
	defer upstream.Close()
	p, err := policy.Default()
	if err != nil {
		panic(err)
	}
	engine, err := policy.New(context.Background(), p)
	if err != nil {
		panic(err)
	}
	observe := func(e gate.Event) {
		fmt.Printf("refused: %v, decided: %v, forwarded: %v\n%s\n", e.Refused, e.Decision != nil, e.Forwarded, e.Failure)
	}
	client := &http.Client{Transport: gate.New(http.DefaultTransport, engine, gate.WithObserver(observe))}
	url := upstream.URL + "/v2/89cd04f168b84af6be287f71730fdb4b/clusters/97cbaab3-939e-4dbc-9187-0fe240f2b9fd/encrypt"
	resp, err := client.Post(url, "text/plain", strings.NewReader(`{"encrypt": {}}`))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// refused: true, decided: false, forwarded: false
	// the request body: its Content-Type is "text/plain", not application/json
	// 400
}
