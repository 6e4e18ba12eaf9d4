package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPortTakenAtStartIsRetried takes n1's Raft port after the harness
// chose it and before the process binds it, as another process on the
// machine may: the first start must exit on it, and WaitReady must start
// n1 again on fresh ports, with an empty data dir, and see it ready,
// without counting the exit as a crash.
func TestPortTakenAtStartIsRetried(t *testing.T) {
	c := newProcClusterStopped(t, 1, withShards(1), withReplicas(1))
	nd := c.node(1)
	taken := nd.raftAddr
	l, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatalf("take n1's Raft port: %v", err)
	}
	defer l.Close()

	c.Start(1)
	c.WaitReady(1, 60*time.Second)
	if nd.raftAddr == taken {
		t.Fatalf("n1 still has the taken Raft address %s", taken)
	}
	if got := strings.Join(c.CommandLine(1), " "); !strings.Contains(got, "--raft-addr "+nd.raftAddr) || strings.Contains(got, taken) {
		t.Errorf("n1's command line does not name its new Raft address %s instead of %s: %s", nd.raftAddr, taken, got)
	}
	if nd.portRetries != 1 {
		t.Errorf("n1 was started again %d times, want 1", nd.portRetries)
	}
	log, err := os.ReadFile(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), portTaken) {
		t.Errorf("n1's log does not show the failed bind")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.crashes) != 0 {
		t.Errorf("the retried exit counts as a crash: %v", c.crashes)
	}
}
