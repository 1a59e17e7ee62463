#!/usr/bin/env bash
# Builds the integration suite's pinned etcd and kube-apiserver (tools/*/go.mod)
# through the Go module proxy into the cache outside the repository
# (${KUBE2LB_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kube2lb}/controlplane/), unless
# they are already there, and prints their paths. The harness does the same
# on demand; see controlplane.Build.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${GO:-go}" run ./cmd/build-controlplane "$@"
