SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# kube2lb. `make demo` shows it working; `make test` runs every test.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
GO      ?= go
BIN     := bin/kube2lb
LDFLAGS := -s -w -X main.version=$(VERSION)
# Packages built without inlining (-l): 0.6 MB less, for the 9 MB limit on
# the binary (issue 9). None of them runs on a hot path: executing the
# template and decoding the API's objects do not go through them (they are
# TLS handshakes and certificates, the HTTP plumbing around the bytes read,
# logging, encoding/json for the rare objects kubeapi does not decode
# itself, the kubeconfig and its PEM blocks, the command and its flags and
# signals, annotation regexps (their verdicts are cached), running
# notifiers, the sorts of render/sort.go; since session 6 the I/O
# plumbing under them: internal/poll's locks around each system call,
# bufio (the HTTP/2 framer's; kubeapi reads into its own buffer), gzip's
# header, context, log, syscall's wrappers (a call more per system call),
# net/netip (an endpoint's address parsed once per EndpointSlice change;
# BenchmarkModel unchanged), and the runtime's cold corners); since session
# 7 text/template (the bodies that run per service run on render's own
# executor, fastexec.go; text/template runs the outline around them and
# what that executor gives up), time (a timestamp parsed once per object
# decoded; the age order sorts their integers), os (a handful of calls
# per render: the configuration is written with writev) and
# encoding/binary (a call per integer of a template cache key: the
# unchanged services of a change are found without keys) and
# unicode/utf8 (kubeapi's strings with escapes or non-ASCII, annotation
# values); since session 8 certificates' ASN.1, HTTP/2's and
# encoding/json's cold corners (container/list, unicode/utf16,
# internal/saferio), math/rand, runtime/debug and the loggers' internal
# buffers (a few log lines per render); since session 10 hash/crc32
# (gzip's checksum of the API's answers: its loop is assembly, called
# per read) and sync/atomic (the methods of its typed values become
# calls; the atomic operations themselves stay the compiler's
# intrinsics: make bench's CPU per change and start-up unchanged); since
# session 18 io (its helpers around the readers and writers kube2lb calls
# through interfaces; the render and decode benchmarks unchanged) and bytes
# (the render benchmarks unchanged; decoding a list of Services about 3 ms
# slower per 10,000, in a first configuration of about 500 ms). TLS and
# HTTP/2 throughput and the render and kubeapi benchmarks are unchanged
# (session 6's additions: make bench's start-up and bytes read, see
# BENCHMARKS.md).
# Never add a hot package (render, kubeapi, text/template, reflect, fmt,
# strings, time, internal/runtime/..., internal/sync (sync.Map, which
# reflect's func-type cache uses), internal/stringslite, ...).
NOINLINE := io bytes crypto/... vendor/golang.org/x/... math/big net net/http/... net/url net/textproto \
	mime/... encoding/json encoding/pem encoding/base64 errors flag log log/slog os/signal os/user text/template/parse regexp/... \
	os/exec path/... io/fs sort bufio compress/gzip context syscall net/netip text/template time os encoding/binary unicode/utf8 \
	internal/godebug internal/poll internal/reflectlite internal/filepathlite internal/syscall/... internal/fmtsort \
	internal/singleflight internal/nettrace internal/bisect internal/saferio encoding/asn1 container/list unicode/utf16 \
	math/rand math/rand/v2 runtime/debug hash/crc32 sync/atomic log/internal log/slog/internal log/slog/internal/buffer \
	github.com/kube2lb/kube2lb github.com/kube2lb/kube2lb/kubeconfig github.com/kube2lb/kube2lb/notify
GCFLAGS := $(foreach p,$(NOINLINE),-gcflags=$(p)=-l)
# Integration tests start real servers; give them room on a 2-core machine.
ITEST_TIMEOUT ?= 40m

.PHONY: all build test unit race integration lint controlplane demo cluster bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath $(GCFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) .

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd integration && $(GO) vet ./...

REPORT := $(CURDIR)/bin/testreport

$(REPORT): integration/cmd/testreport/main.go
	cd integration && $(GO) build -o $(REPORT) ./cmd/testreport

# Unit tests of every package of the main module.
unit: $(REPORT)
	$(GO) test -count=1 -json ./... | $(REPORT)

# The end-to-end suite: a real kube-apiserver + etcd, kube2lb as a built
# binary, real HAProxy, nginx and Caddy. Skipped tests are listed with their
# reason at the end (in CI, CI=true, a missing prerequisite fails instead).
integration: build controlplane $(REPORT)
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout $(ITEST_TIMEOUT) -json ./... | $(REPORT)

# The unit tests again under the race detector: renders run bodies on
# every CPU, the spiller and the sweep run beside them (needs cgo, as the
# race detector does: gcc).
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# The README's test command.
test: lint unit race integration

# Builds (once, cached outside the repository) kube-apiserver and etcd.
controlplane:
	./integration/controlplane/build.sh

demo: build controlplane
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/demo

# A local cluster to try kube2lb against (the demo's control plane, Nodes
# and Services), kept until Ctrl-C; it prints the kubeconfigs.
cluster: build controlplane
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/demo -cluster

# Go benchmarks, then kube2lb against a large cluster and a 3,000-Service one
# (integration/cmd/bench):
# prints its tables, rewrites the generated section of BENCHMARKS.md and
# fails when a target is missed (BENCHMARKS.md, "Targets"). The
# sizes whose output is counted in GiB need KUBE2LB_BENCH_FULL=1 (Go) and
# -nodes-full (cmd/bench).
bench: build controlplane
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench

clean:
	rm -rf bin
