package acl

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/cavedb/cave/acl/action"
)

// TestGolden runs testdata/*.txt: "policy" sets the policy from lines
// "grant SUBJECT ACTION PREFIX" (PREFIX "-" for the empty prefix) and
// "bind USER ROLE"; "check" prints allow/deny for lines "SUBJECT ACTION KEY".
func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		e, err := New()
		if err != nil {
			t.Fatal(err)
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "policy":
				var p Policy
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					f := strings.Fields(line)
					switch {
					case len(f) == 4 && f[0] == "grant":
						prefix := f[3]
						if prefix == "-" {
							prefix = ""
						}
						p.Grants = append(p.Grants, Grant{Subject: f[1], Action: action.Action(f[2]), Prefix: prefix})
					case len(f) == 3 && f[0] == "bind":
						p.Bindings = append(p.Bindings, Binding{User: f[1], Role: f[2]})
					default:
						t.Fatalf("bad policy line %q", line)
					}
				}
				if err := e.SetPolicy(p); err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			case "check":
				var out strings.Builder
				for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
					f := strings.Fields(line)
					if len(f) != 3 {
						t.Fatalf("bad check line %q", line)
					}
					verdict := "deny"
					if e.Allowed(f[0], f[2], action.Action(f[1])) {
						verdict = "allow"
					}
					fmt.Fprintf(&out, "%s %s %s: %s\n", f[0], f[1], f[2], verdict)
				}
				return out.String()
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

// TestConcurrentSetPolicy checks that checks running during policy swaps
// see either the old or the new policy, never an error or a mix.
func TestConcurrentSetPolicy(t *testing.T) {
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	reader := Policy{Grants: []Grant{{Subject: "r", Prefix: "app/", Action: action.Read}}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			if err := e.SetPolicy(reader); err != nil {
				t.Error(err)
			}
		}
		close(stop)
	}()
	for {
		select {
		case <-stop:
			wg.Wait()
			if !e.Allowed("r", "app/x", action.Read) {
				t.Fatal("final policy not in force")
			}
			return
		default:
			if e.Allowed("r", "other/x", action.Read) {
				t.Fatal("read outside the granted prefix allowed")
			}
		}
	}
}

// BenchmarkAllowed measures one access check, the cost every call pays
// with the ACL on, against policies of ROLES roles with ten users each.
func BenchmarkAllowed(b *testing.B) {
	for _, roles := range []int{2, 100} {
		b.Run(fmt.Sprintf("roles=%d", roles), func(b *testing.B) {
			var p Policy
			for r := range roles {
				role := fmt.Sprintf("role-%d", r)
				p.Grants = append(p.Grants, Grant{Subject: role, Prefix: fmt.Sprintf("app-%d/", r), Action: action.Read})
				for u := range 10 {
					p.Bindings = append(p.Bindings, Binding{User: fmt.Sprintf("user-%d-%d", r, u), Role: role})
				}
			}
			e, err := New()
			if err != nil {
				b.Fatal(err)
			}
			if err := e.SetPolicy(p); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if !e.Allowed("user-1-7", "app-1/x/y", action.Read) {
					b.Fatal("denied")
				}
			}
		})
	}
}
