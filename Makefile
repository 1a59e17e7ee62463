SHELL := /bin/bash
# kube2lb. `make demo` shows it working; `make test` runs every test.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
GO      ?= go
BIN     := bin/kube2lb
LDFLAGS := -s -w -X main.version=$(VERSION)
# Integration tests start real servers; give them room on a 2-core machine.
ITEST_TIMEOUT ?= 40m

.PHONY: all build test unit integration lint controlplane demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd integration && $(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

integration: build controlplane
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout $(ITEST_TIMEOUT) -v ./... 2>&1 | tee $(CURDIR)/bin/integration.log | grep -E '^(=== RUN|--- |ok|FAIL|PASS|panic)|skip' ; exit $${PIPESTATUS[0]}

# The README's test command: lint, unit tests, then the integration suite
# against a real kube-apiserver + etcd and real load balancers.
test: lint unit integration
	@./integration/skipped.sh bin/integration.log

# Builds (once, cached outside the repository) kube-apiserver and etcd.
controlplane:
	./integration/controlplane/build.sh

demo: build controlplane
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/demo

bench: build controlplane
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd integration && KUBE2LB_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench

clean:
	rm -rf bin
