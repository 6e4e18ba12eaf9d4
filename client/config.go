package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Config configures a Client. Start from DefaultConfig and set Endpoints.
type Config struct {
	// Endpoints are gRPC HOST:PORT addresses of cluster nodes. The client
	// learns the routing from them, in order, and sends requests to them
	// while the routing is unknown. At least one; no default.
	Endpoints []string
	// TLS, when set, secures every connection: RootCAs verifies the nodes,
	// Certificates holds the client certificate. nil means plaintext, as
	// --mode=dev serves.
	TLS *tls.Config
	// Token is a bearer token of the auth API, sent as authorization
	// metadata with every call; "" sends none.
	Token string
	// DialOptions are added after the client's own options (credentials,
	// message sizes, the token) to every connection.
	DialOptions []grpc.DialOption
	// RefreshInterval is how often the routing is refreshed in the
	// background. Default 5s; must be > 0.
	RefreshInterval time.Duration
	// MinRefreshInterval is the shortest time between two refreshes: the
	// failures that each ask for one at once cause at most one per
	// interval. Default 100ms; must be in (0, RefreshInterval].
	MinRefreshInterval time.Duration
	// RefreshTimeout bounds one Routing call to one node. Default 2s; must
	// be > 0.
	RefreshTimeout time.Duration
	// MaxAttempts is the most times one request is sent. Default 6; must
	// be >= 1.
	MaxAttempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// further attempt, up to MaxBackoff. Defaults 25ms and 1s; Backoff must
	// be > 0 and MaxBackoff >= Backoff.
	Backoff, MaxBackoff time.Duration
	// MaxMessageBytes bounds every message sent or received, in bytes.
	// Default 64 MiB + 64 KiB: the largest --max-value-bytes a server
	// takes, with room for the envelope. Must be >= 1.
	MaxMessageBytes int
}

// DefaultConfig returns a Config with every default set and no Endpoints.
func DefaultConfig() Config {
	return Config{
		RefreshInterval:    5 * time.Second,
		MinRefreshInterval: 100 * time.Millisecond,
		RefreshTimeout:     2 * time.Second,
		MaxAttempts:        6,
		Backoff:            25 * time.Millisecond,
		MaxBackoff:         time.Second,
		MaxMessageBytes:    64<<20 + 64<<10,
	}
}

// Validate reports every problem of c at once, one per line; it does not
// change c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("client: "+format, args...)) }
	if len(c.Endpoints) == 0 {
		bad("Endpoints must name at least one HOST:PORT")
	}
	for i, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			bad("Endpoints[%d] is empty", i)
		}
	}
	if c.RefreshInterval <= 0 {
		bad("RefreshInterval must be > 0, got %s", c.RefreshInterval)
	}
	if c.MinRefreshInterval <= 0 || c.MinRefreshInterval > c.RefreshInterval {
		bad("MinRefreshInterval must be in (0, RefreshInterval=%s], got %s", c.RefreshInterval, c.MinRefreshInterval)
	}
	if c.RefreshTimeout <= 0 {
		bad("RefreshTimeout must be > 0, got %s", c.RefreshTimeout)
	}
	if c.MaxAttempts < 1 {
		bad("MaxAttempts must be >= 1, got %d", c.MaxAttempts)
	}
	if c.Backoff <= 0 {
		bad("Backoff must be > 0, got %s", c.Backoff)
	}
	if c.MaxBackoff < c.Backoff {
		bad("MaxBackoff must be >= Backoff=%s, got %s", c.Backoff, c.MaxBackoff)
	}
	if c.MaxMessageBytes < 1 {
		bad("MaxMessageBytes must be >= 1, got %d", c.MaxMessageBytes)
	}
	return errors.Join(errs...)
}
