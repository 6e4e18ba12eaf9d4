// Command etcd is etcd's own server (go.etcd.io/etcd/server/v3 etcdmain),
// built from the Go module proxy so that scripts/bench-etcd.sh can compare
// cave with etcd on the same machine. It is a separate module: etcd's
// dependencies never enter cave's.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
