// Command build-controlplane builds the integration suite's pinned etcd and
// kube-apiserver into the cache (see controlplane.Build) and prints their
// paths. It does nothing when they are already built.
//
//	cd integration && go run ./cmd/build-controlplane
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kube2lb/kube2lb/integration/controlplane"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := controlplane.Build(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-controlplane:", err)
		os.Exit(1)
	}
	fmt.Println("etcd:", b.Etcd)
	fmt.Println("kube-apiserver:", b.KubeAPIServer)
}
