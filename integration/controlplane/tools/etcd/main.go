// Command etcd is etcd's server, built from the version pinned in go.mod for
// the integration suite's control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
