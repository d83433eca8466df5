# netd: `make help` lists the targets. `sudo make demo` and `sudo make test`
# work on a fresh Debian/Ubuntu machine with Go in /usr/local/go.

SHELL       := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO          ?= go
BIN         := bin/netd
NETD_BIN    := $(CURDIR)/$(BIN)
# Stamped into `netd version` (client and server); "dev" outside git.
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/netd-dev/netd/api/buildinfo.Version=$(VERSION)
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Everything the build, the tests and the benchmark need from the distribution.
DEPS_PKGS := clang llvm libbpf-dev bpftool iproute2 bridge-utils iperf3 sockperf \
             tcpdump nftables iputils-ping netcat-openbsd util-linux

UNIT_PKGS    = $$($(GO) list ./... | grep -v /tools/e2e)
GENERATED    = dataplane/fastpath/*_bpfel.go dataplane/fastpath/*_bpfel.o
FUZZ_TIME   ?= 20s
E2E_TIMEOUT ?= 12m
E2E_FLAGS   ?=
# bench-smoke: every bench setup must come up and measure; speed is not asserted.
SMOKE_OUT   ?= bin/bench-smoke
SMOKE_FLAGS ?= --rounds 1 --duration 1s --scale 10,100

.DEFAULT_GOAL := help
.PHONY: help deps generate build test check-mod check-fmt check-generated vet unit fuzz e2e bench-smoke demo bench fmt lint lab-clean clean

help: ## List the targets
	@echo "netd make targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## Install build/test/bench packages with apt-get (idempotent; no update when all present)
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; else \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "deps: Go not found (expected /usr/local/go/bin/go)"; exit 1; }

generate: ## Regenerate the bpf2go Go bindings and eBPF objects in dataplane/fastpath/
	$(GO) generate ./dataplane/fastpath/

build: ## Build bin/netd
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/netd

test: deps build check-mod check-fmt vet check-generated unit fuzz e2e bench-smoke ## Everything CI runs (needs root for the e2e tests)
	@echo "make test: all passed"

check-mod: ## Fail if go.mod/go.sum are not what `go mod tidy` makes them
	@out=$$($(GO) mod tidy -diff) || { echo "go.mod/go.sum are not tidy: run go mod tidy"; echo "$$out"; exit 1; }; \
	echo "check-mod: go.mod and go.sum tidy"

check-fmt: ## Fail if any Go file is not gofmt-clean
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet: ## go vet ./...
	$(GO) vet ./...

check-generated: ## Fail if the committed eBPF objects/bindings differ from a fresh `go generate`
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -a go.mod go.sum api bpf dataplane "$$tmp"/; \
	rm -f $(addprefix "$$tmp"/,$(GENERATED)); \
	(cd "$$tmp" && $(GO) generate ./dataplane/fastpath/) || exit 1; \
	fresh=$$(cd "$$tmp" && ls $(GENERATED) 2>/dev/null); have=$$(ls $(GENERATED) 2>/dev/null); \
	if [ "$$fresh" != "$$have" ]; then echo "generated files differ: have [$$have] fresh [$$fresh]; run make generate"; exit 1; fi; \
	for f in $$fresh; do cmp -s "$$f" "$$tmp/$$f" || { echo "$$f is stale: run make generate"; exit 1; }; done; \
	echo "check-generated: eBPF objects up to date"

unit: ## Unit tests (all packages but the e2e tests)
	$(GO) test -count=1 -timeout 5m $(UNIT_PKGS)

fuzz: ## Fuzz the eBPF program for FUZZ_TIME (default 20s)
	$(GO) test -run='^$$' -fuzz=FuzzFromContainer -fuzztime=$(FUZZ_TIME) -fuzzminimizetime=2s ./dataplane/fastpath/

e2e: build ## End-to-end tests: real daemons in lab namespaces (root)
	NETD_BIN=$(NETD_BIN) $(GO) test -count=1 -timeout $(E2E_TIMEOUT) $(E2E_FLAGS) ./tools/e2e/

bench-smoke: build ## One short bench round: ebpf, kernel and veth setups come up and measure (root)
	@rm -rf $(SMOKE_OUT); \
	if NETD_BIN=$(NETD_BIN) $(GO) run ./tools/bench $(SMOKE_FLAGS) --out $(SMOKE_OUT); then \
	  echo "bench-smoke: all setups measured (results in $(SMOKE_OUT))"; \
	else rc=$$?; \
	  echo "bench-smoke: FAILED (exit $$rc); the table above lists the failures; daemon logs:"; \
	  for f in $(SMOKE_OUT)/netd-*.log $(SMOKE_OUT)/dataplane-*.txt; do \
	    [ -f "$$f" ] && { echo "---- $$f (last 40 lines)"; tail -n 40 "$$f"; }; \
	  done; exit 1; \
	fi

demo: deps build ## Walk through networks, containers and pings in a throwaway lab (root)
	NETD_BIN=$(NETD_BIN) $(GO) run ./tools/demo

bench: deps build ## eBPF vs kernel bridge vs direct veth, side by side; network create/rm/ls at 10, 100, 1000 networks (root)
	NETD_BIN=$(NETD_BIN) $(GO) run ./tools/bench

fmt: ## gofmt -w every Go file
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

lint: check-fmt vet ## gofmt check + go vet

# Lab prefixes: ndl<4 hex> (tests, demo), ndb<4 hex>[ek] (bench); their netns,
# pin dirs and /tmp work dirs all start with <prefix>-.
LAB_RE := ^nd[lb][0-9a-f]{4}[ek]?-

lab-clean: ## Remove namespaces, pins and work dirs left by a killed lab run (no lab may be running)
	@for ns in $$(ls /run/netns 2>/dev/null | grep -E '$(LAB_RE)'); do echo "ip netns del $$ns"; ip netns del $$ns; done
	@for d in $$(ls /sys/fs/bpf/netd 2>/dev/null | grep -E '$(LAB_RE)'); do echo "rm -rf /sys/fs/bpf/netd/$$d"; rm -rf /sys/fs/bpf/netd/$$d; done
	@for d in $$(ls $${TMPDIR:-/tmp} 2>/dev/null | grep -E '$(LAB_RE)'); do echo "rm -rf $${TMPDIR:-/tmp}/$$d"; rm -rf $${TMPDIR:-/tmp}/$$d; done

clean: ## Remove build output
	rm -rf bin
