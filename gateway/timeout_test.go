package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cavedb/cave/internal/nodetest"
)

// TestHTTPServerLimits checks the refusals of the HTTP server itself: a
// request whose body never completes is cut after the read timeout
// (--http-read-timeout) and writes nothing; a request line that does not
// parse and oversize headers get net/http's plain-text answers, as the
// README says.
func TestHTTPServerLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	const readTimeout = 500 * time.Millisecond
	c := nodetest.NewCluster(t, 1, nodetest.WithShards(1), nodetest.WithHTTPReadTimeout(readTimeout))
	addr := strings.TrimPrefix(c.HTTPURL(0), "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	start := time.Now()
	_, err = fmt.Fprintf(conn, "PUT /api/v1/kv/slow/body HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\nonly part of it", addr)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*readTimeout)))
	// The server answers the broken-off body with a 400, or just closes:
	// either way the connection ends well before the test's deadline.
	_, err = io.ReadAll(bufio.NewReader(conn))
	require.NoError(t, err, "the connection stayed open after the read timeout")
	assert.Less(t, time.Since(start), 5*readTimeout)

	code, body := do(t, t.Context(), http.MethodGet, c.HTTPURL(0)+"/api/v1/kv/slow/body", "")
	assert.Equal(t, http.StatusNotFound, code, "a body that never completed was written: %s", body)

	raw := func(request string) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = io.WriteString(conn, request)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	assert.Equal(t, "400 text/plain; charset=utf-8 400 Bad Request",
		raw("GET /api/v1/kv/bad%zz HTTP/1.1\r\nHost: x\r\n\r\n"))
	assert.Equal(t, "431 text/plain; charset=utf-8 431 Request Header Fields Too Large",
		raw("GET /api/v1/kv/a HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 80<<10)+"\r\n\r\n"))
}
