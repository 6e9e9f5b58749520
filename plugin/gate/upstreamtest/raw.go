package upstreamtest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// Exchange is a raw HTTP/1.1 client: it sends the case byte for byte (Raw) on a new TCP connection to addr,
// so that methods, targets and headers reach the server exactly as written, reads one answer and closes the
// connection. It returns the answer's status and body, or status 0 and the error. On a 101 Switching
// Protocols answer it sends the Tunnel on the connection, and reads what comes back until the server closes
// it.
func (c Case) Exchange(ctx context.Context, addr, host string) (int, []byte) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write(c.Raw(host)); err != nil {
		return 0, []byte(err.Error())
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: c.Method})
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if c.Tunnel != nil {
			conn.Write(c.Tunnel)
			io.Copy(io.Discard, br) // until the server closes the connection (the tunnel's last request asks it to)
		}
		return resp.StatusCode, nil
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
