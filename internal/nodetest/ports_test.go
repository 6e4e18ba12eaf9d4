package nodetest

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStartRetriesTakenPorts hands the first node addresses that another
// socket holds, one bind at a time: the Raft port (dragonboat's listener),
// the gossip port for TCP (memberlist's first bind) and for UDP only (its
// second). Each start must fail on the taken port and be retried on fresh
// ones, and the node must come up on the fourth pick.
func TestStartRetriesTakenPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	raftLn := listen(t)
	gossipTCP := listen(t)
	gossipUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { gossipUDP.Close() })

	held := map[string]bool{
		raftLn.Addr().String():         true,
		gossipTCP.Addr().String():      true,
		gossipUDP.LocalAddr().String(): true,
	}
	free := func() (string, string) {
		r, g, err := freeAddrs(held)
		require.NoError(t, err)
		return r, g
	}
	r1, g1 := free()
	r2, _ := free()
	picks := [][2]string{
		{raftLn.Addr().String(), g1},
		{r1, gossipTCP.Addr().String()},
		{r2, gossipUDP.LocalAddr().String()},
	}
	var calls int
	pick := func(taken map[string]bool) (string, string, error) {
		calls++
		if calls <= len(picks) {
			return picks[calls-1][0], picks[calls-1][1], nil
		}
		return freeAddrs(taken)
	}

	c := NewCluster(t, 1, WithShards(1), func(s *settings) { s.pickAddrs = pick })
	assert.Equal(t, len(picks)+1, calls, "one pick per failed start, and one that works")
	m := c.member(0)
	for _, p := range picks {
		assert.NotEqual(t, p[0], m.raftAddr)
		assert.NotEqual(t, p[1], m.gossipAddr)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}
