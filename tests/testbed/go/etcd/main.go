// Command etcd is the test bed's etcd server: the upstream server module's entry point, built as a
// dependency because go.etcd.io/etcd/server/v3 cannot be `go install`ed (its go.mod has replaces).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
