package dwsapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"

	"github.com/precheck/precheck/plugin/dwsfake"
)

// TestErrorTextIsOneBoundedLine: an error answer that is not the API's JSON (a proxy's 4 MiB HTML page)
// becomes the SDK's whole ErrorMessage; what the *Error carries and says is one line of bounded length,
// since it reaches the gate's answer, its log and the command line.
func TestErrorTextIsOneBoundedLine(t *testing.T) {
	t.Parallel()
	s := newSetup(t, true, nil)
	page := "<html>\n<body>\x1b[31m" + strings.Repeat("A", 4<<20) + "</body></html>\n"
	s.srv.Fail(dwsfake.ListClusterDetails, dwsfake.Fault{Status: http.StatusBadGateway, Body: []byte(page)})
	de := s.factsError(t, context.Background(), exampleRequest)
	msg := de.Error()
	if len(msg) > 1024 || strings.ContainsAny(msg, "\n\r\x1b") {
		t.Errorf("the error says %d bytes: %.200q", len(msg), msg)
	}
	var se *sdkerr.ServiceResponseError
	if !errors.As(de, &se) || se.StatusCode != http.StatusBadGateway {
		t.Fatalf("cause = %#v, want the 502 answer", de.Err)
	}
	if len(se.ErrorMessage) > 1024 || !strings.HasPrefix(se.ErrorMessage, "<html> <body> ") {
		t.Errorf("the answer's message kept %d bytes: %.80q", len(se.ErrorMessage), se.ErrorMessage)
	}
}
