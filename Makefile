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
             tcpdump tshark nftables iputils-ping netcat-openbsd util-linux \
             docker.io busybox-static dnsutils ethtool file systemd
# Units Debian's docker.io (and the containerd it pulls in) enable on install; the bench
# runs its own dockerd in a namespace, so deps disables them again (docker-units-off).
DOCKER_UNITS ?= docker.service docker.socket containerd.service

UNIT_PKGS    = $$($(GO) list ./... | grep -v /tools/e2e)
GENERATED    = dataplane/fastpath/*_bpfel.go dataplane/fastpath/*_bpfel.o overlay/fastpath/*_bpfel.go overlay/fastpath/*_bpfel.o
GEN_PKGS     = ./dataplane/fastpath/ ./dataplane/publish/ ./overlay/fastpath/
FUZZ_TIME   ?= 20s
E2E_TIMEOUT ?= 12m
E2E_FLAGS   ?=
# bench-smoke: every bench setup must come up and measure; speed is not asserted.
SMOKE_OUT   ?= bin/bench-smoke
SMOKE_FLAGS ?= --rounds 1 --duration 1s --scale 10,100 --controlplane 5 --dns 1s --publish quick

.DEFAULT_GOAL := help
.PHONY: help deps docker-units-off generate build install uninstall install-test vagrant-deps vagrant-box vagrant-test test-slow test check-mod check-fmt check-generated vet unit fuzz e2e bench-smoke demo bench bench-gossip compat fmt lint lab-clean clean

help: ## List the targets
	@echo "netd make targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## Install build/test/bench packages with apt-get (idempotent; no update when all present)
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all packages present"; else \
	  echo "deps: installing$$missing"; \
	  units=""; \
	  case " $$missing " in *" docker.io "*) \
	    units="docker.service docker.socket"; \
	    dpkg-query -W -f='$${Status}' containerd 2>/dev/null | grep -q 'install ok installed' || units="$$units containerd.service";; \
	  esac; \
	  if [ -n "$$units" ] && [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\n# written by make deps for one apt-get install: start no service\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && \
	    $(SUDO) chmod 755 /usr/sbin/policy-rc.d && trap '$(SUDO) rm -f /usr/sbin/policy-rc.d' EXIT; \
	  fi; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || exit 1; \
	  [ -z "$$units" ] || $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) docker-units-off DOCKER_UNITS="$$units"; \
	fi
	@command -v $(GO) >/dev/null || { echo "deps: Go not found (expected /usr/local/go/bin/go)"; exit 1; }

docker-units-off: ## Disable (with systemd: and stop) the units docker.io enables; deps runs it after installing docker.io
	@if command -v systemctl >/dev/null; then \
	  now=""; [ -d /run/systemd/system ] && now="--now"; \
	  $(SUDO) systemctl disable $$now $(DOCKER_UNITS) || echo "docker-units-off: systemctl disable failed (above); the bench needs none of these units"; \
	elif command -v update-rc.d >/dev/null && [ -e /etc/init.d/docker ]; then \
	  $(SUDO) update-rc.d docker disable; \
	fi; \
	root=$$($(SUDO) readlink /proc/1/ns/net); \
	for p in $$(pgrep -x dockerd); do \
	  [ "$$($(SUDO) readlink /proc/$$p/ns/net)" != "$$root" ] || \
	    echo "docker-units-off: warning: a dockerd (pid $$p) runs in the root network namespace; the bench never uses it"; \
	done; \
	echo "docker-units-off: $(DOCKER_UNITS) disabled"

generate: ## Regenerate the bpf2go Go bindings and eBPF objects in dataplane/fastpath/ and overlay/fastpath/
	$(GO) generate $(GEN_PKGS)

build: ## Build bin/netd (static: it is copied as is into VMs and onto hosts)
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/netd

# make install: the binary, the systemd unit, bash completion, /etc/netd/daemon.json
# (kept if present) and, on this machine (no DESTDIR), the netd group owning the socket.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
COMPDIR ?= /usr/share/bash-completion/completions

install: build ## Install netd, its systemd unit, bash completion and config (PREFIX, DESTDIR)
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/netd
	@install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPDIR) $(DESTDIR)/etc/netd
	sed 's|@BINDIR@|$(BINDIR)|g' tools/install/netd.service > $(DESTDIR)$(UNITDIR)/netd.service
	$(BIN) completion bash > $(DESTDIR)$(COMPDIR)/netd
	@if [ -e $(DESTDIR)/etc/netd/daemon.json ]; then echo "install: keeping $(DESTDIR)/etc/netd/daemon.json"; \
	else install -m 0644 tools/install/daemon.json $(DESTDIR)/etc/netd/daemon.json; fi
	@if [ -z "$(DESTDIR)" ]; then \
	  getent group netd >/dev/null || { $(SUDO) groupadd --system netd && echo "install: created group netd (members may use the netd socket)"; }; \
	  [ -d /run/systemd/system ] && $(SUDO) systemctl daemon-reload || true; \
	  echo "install: done; start it with: systemctl enable --now netd"; \
	fi

uninstall: ## Remove what make install put in place; /etc/netd and the state in /var/lib/netd stay
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now netd 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(BINDIR)/netd $(DESTDIR)$(UNITDIR)/netd.service $(DESTDIR)$(COMPDIR)/netd
	@if [ -z "$(DESTDIR)" ]; then \
	  [ -d /run/systemd/system ] && $(SUDO) systemctl daemon-reload || true; \
	  ! getent group netd >/dev/null || $(SUDO) groupdel netd; \
	fi
	@echo "uninstall: kept $(DESTDIR)/etc/netd and /var/lib/netd (remove them by hand to forget every network)"

# The Vagrant lab (issue 14): packages for it, the local box, and the test that boots it.
VAGRANT_PKGS := vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 \
                qemu-utils debootstrap extlinux syslinux-common e2fsprogs dnsmasq-base openssh-client
VAGRANT_BOX  ?= /var/tmp/netd-vagrant/netd-bookworm.box

vagrant-deps: ## Install vagrant, vagrant-libvirt, libvirt, qemu and debootstrap (no service is started)
	@missing=""; for p in $(VAGRANT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "vagrant-deps: all packages present"; else \
	  echo "vagrant-deps: installing$$missing"; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\n# written by make vagrant-deps: start no service (libvirtd runs in a lab namespace)\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && \
	    $(SUDO) chmod 755 /usr/sbin/policy-rc.d && trap '$(SUDO) rm -f /usr/sbin/policy-rc.d' EXIT; \
	  fi; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || exit 1; \
	  if [ -d /run/systemd/system ]; then for u in libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket \
	    virtlogd.service virtlogd.socket virtlockd.socket; do $(SUDO) systemctl disable --now $$u 2>/dev/null || true; done; fi; \
	fi

vagrant-box: vagrant-deps ## Build the local libvirt box of Debian 12 from Debian's packages (VAGRANT_BOX; reused when present)
	@if [ -s $(VAGRANT_BOX) ]; then echo "vagrant-box: reusing $(VAGRANT_BOX) (delete it to rebuild)"; \
	else $(SUDO) tools/vagrant/build-box.sh $(VAGRANT_BOX); fi

vagrant-test: build vagrant-box ## Boot the 3-VM lab with vagrant-libvirt in a lab netns and check gossip, overlays, VXLAN (root, ~10 min under TCG)
	$(if $(SUDO),$(SUDO) -E) env NETD_BIN=$(NETD_BIN) NETD_BOX_FILE=$(VAGRANT_BOX) tools/vagrant/lab.sh

install-test: build ## make install into a scratch DESTDIR: files, static binary, systemd-analyze verify, completion, uninstall
	tools/install/test.sh

test: deps build check-mod check-fmt vet check-generated unit install-test fuzz e2e test-slow ## Everything CI runs (needs root for the e2e tests)
	@echo "make test: all passed"

# The two slow end-to-end stages side by side (CI has 30 minutes): bench-smoke asserts no
# speed, and the VMs' checks are bounded in time, so sharing the CPUs costs neither a result.
test-slow: ## bench-smoke and vagrant-test in parallel (each one's output printed when it ends)
	@$(MAKE) --no-print-directory -j2 --output-sync=target bench-smoke vagrant-test

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
	cp -a go.mod go.sum api bpf dataplane overlay "$$tmp"/; \
	rm -f $(addprefix "$$tmp"/,$(GENERATED)); \
	(cd "$$tmp" && $(GO) generate $(GEN_PKGS)) || exit 1; \
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

bench-smoke: build ## One short bench round: every setup (bridges, docker, veth, macvlan, overlays, underlay) comes up and measures (root)
	@rm -rf $(SMOKE_OUT); \
	if NETD_BIN=$(NETD_BIN) $(GO) run ./tools/bench $(SMOKE_FLAGS) --out $(SMOKE_OUT) && \
	   $(GO) run ./tools/gossipsim --sizes 10 --quick --out $(SMOKE_OUT); then \
	  echo "bench-smoke: all setups measured, gossip simulation ran (results in $(SMOKE_OUT))"; \
	else rc=$$?; \
	  echo "bench-smoke: FAILED (exit $$rc); the table above lists the failures; daemon logs:"; \
	  for f in $(SMOKE_OUT)/netd-*.log $(SMOKE_OUT)/dataplane-*.txt $(SMOKE_OUT)/docker-*.log; do \
	    [ -f "$$f" ] && { echo "---- $$f (last 40 lines)"; tail -n 40 "$$f"; }; \
	  done; exit 1; \
	fi

demo: deps build ## 3 lab hosts: an overlay network, a container per host, a ping matrix, the counters; all removed after (root)
	NETD_BIN=$(NETD_BIN) $(GO) run ./tools/demo

bench: deps build ## eBPF vs kernel bridge vs Docker's bridge vs direct veth, eBPF vs kernel overlay vs underlay, side by side; network create/rm/ls at 10, 100, 1000 networks; overlay control-plane timings; embedded DNS queries from a container (root)
	NETD_BIN=$(NETD_BIN) $(GO) run ./tools/bench
	$(GO) run ./tools/gossipsim --sizes 10,100 --out bench-results

bench-gossip: ## Gossip simulation: 10, 100, 1000 members of gossip/ on loopback; spread, withdrawal, bytes/s (bin/bench/results-gossip.json)
	$(GO) run ./tools/gossipsim --out bin/bench

compat: deps build ## Same `network` steps against a real dockerd and netd; diff stdout, stderr, exit codes (root; report in bin/compat)
	NETD_BIN=$(NETD_BIN) $(GO) run ./tools/compat --out bin/compat

fmt: ## gofmt -w every Go file
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

lint: check-fmt vet ## gofmt check + go vet

# Lab prefixes: ndl<4 hex> (tests, demo), ndb<4 hex><setup letter> (bench), ndc<4 hex> (compat);
# their netns, pin dirs, /tmp work dirs and (a Docker engine's) cgroups all start with <prefix>-.
LAB_RE := ^nd[lbc][0-9a-f]{4}[a-z]?-

lab-clean: ## Remove namespaces, pins and work dirs left by a killed lab run (no lab may be running)
	@for ns in $$(ls /run/netns 2>/dev/null | grep -E '$(LAB_RE)'); do echo "ip netns del $$ns"; ip netns del $$ns; done
	@for d in $$(ls /sys/fs/bpf/netd 2>/dev/null | grep -E '$(LAB_RE)'); do echo "rm -rf /sys/fs/bpf/netd/$$d"; rm -rf /sys/fs/bpf/netd/$$d; done
	@for d in $$(ls /etc/netns 2>/dev/null | grep -E '$(LAB_RE)'); do echo "rm -rf /etc/netns/$$d"; rm -rf /etc/netns/$$d; done
	@for d in $$(ls -d /sys/fs/cgroup/ /sys/fs/cgroup/*/ 2>/dev/null); do for c in $$(ls $$d 2>/dev/null | grep -E '$(LAB_RE)'); do \
	  echo "rmdir cgroup $$d$$c"; find $$d$$c -depth -type d -exec rmdir {} +; done; done
	@for d in $$(ls $${TMPDIR:-/tmp} 2>/dev/null | grep -E '$(LAB_RE)'); do \
	  for m in $$(awk '{print $$5}' /proc/self/mountinfo | grep "^$${TMPDIR:-/tmp}/$$d/" | sort -r); do echo "umount -l $$m"; umount -l $$m; done; \
	  echo "rm -rf $${TMPDIR:-/tmp}/$$d"; rm -rf $${TMPDIR:-/tmp}/$$d; done

clean: ## Remove build output
	rm -rf bin
