package connpool

import (
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func insecureCreds() grpc.DialOption { return grpc.WithTransportCredentials(insecure.NewCredentials()) }

// TestPool checks that one address gets one shared connection, and that a
// closed pool refuses new ones.
func TestPool(t *testing.T) {
	t.Parallel()
	p := New()
	if _, err := p.Conn("127.0.0.1:1"); err == nil {
		t.Fatal("a pool without transport credentials made a connection")
	}
	p = New(insecureCreds())
	a, err := p.Conn("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Conn("127.0.0.1:1")
	if err != nil || a != b {
		t.Fatalf("second Conn = %p, %v; want the first, %p", b, err, a)
	}
	if c, _ := p.Conn("127.0.0.1:2"); c == a {
		t.Fatal("two addresses share a connection")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := p.Conn("127.0.0.1:1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Conn after Close = %v, want ErrClosed", err)
	}
}
