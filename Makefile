# seamless: seamless kernel updates for Linux.
#
#   make build   build the binaries into bin/
#   make test    install what the tests need, then vet and run every test (root)
#   make bench   checkpoint/restore throughput benchmarks (root); CRIU=/path/to/criu
#                adds the same run with CRIU, alternating, and the ratios
#   make demo    build the QEMU lab and show a kernel update (root)
#   make deb     build the Debian package into build/deb/ (docs/packaging.md)
#   make rpm     build the RPM package into build/rpm/ and check it with rpmlint
#   make rpm-check  dnf4 and dnf5 install a kernel in an installroot: the hooks run (root)
#   make lab-all run every lab scenario, on every lab guest (root; hours)
#   make bench-lab  BENCH_N interleaved lab runs of seamless-update and kexec-plain:
#                median and spread of the gap and each phase, JSON + SVG (root; ~15 min a run)
#   make bench-scale  seamless-update and kexec-plain with memcached holding 64 MiB, 512 MiB and
#                1.5 GiB in a 4 GiB guest: the gap against the size, JSON + SVG (root; ~45 min)
#   make kmod    build the kernel module for every kernel whose headers are installed

GO      ?= go
BIN     := bin
PKGS    := ./cmd/... ./internal/... ./test/...
DEBS    := gcc make libc6-dev iproute2 util-linux e2fsprogs
DEBDIR  ?= build/deb
RPMDIR  ?= build/rpm
export GOFLAGS ?= -buildvcs=false

.PHONY: all build test unit roundtrip bench bench-lab bench-scale demo deb rpm rpm-check lab-all deps vet fmt-check clean kmod

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is required (https://go.dev/doc/install); this project needs Go 1.26" >&2; exit 1; }
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download

fmt-check:
	@out=$$(gofmt -l cmd internal test initramfs); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: deps fmt-check
	$(GO) vet $(PKGS)

test: vet
	$(GO) test -count=1 $(PKGS)
	$(MAKE) rpm-check

bench: deps
	SEAMLESS_CRIU=$(CRIU) $(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./test/bench/

demo:
	bash lab/demo.sh

# dpkg-buildpackage -b -us -uc, out of the tree; the modules are fetched
# first so that the package build itself is offline.
deb: DEBS += debhelper dpkg-dev dh-dkms
deb: deps
	bash packaging/build-deb.sh $(DEBDIR)

# rpmbuild on this machine (Debian's rpm package), then rpmlint.
rpm: DEBS += rpm rpmlint
rpm: deps
	bash rpm/build-rpm.sh $(RPMDIR)
	rpmlint -r rpm/seamless.rpmlintrc rpm/seamless.spec $(RPMDIR)/seamless-*.rpm

# Real dnf4 (this Debian's) and dnf5 (in a Debian sid root it builds once)
# install the package and a test kernel-core into installroots.
rpm-check: DEBS += rpm dnf python3-dnf createrepo-c debootstrap
rpm-check: rpm
	bash rpm/check.sh $(RPMDIR)

lab-all:
	LAB_SCENARIOS=all bash lab/ci.sh

# BENCH_JSON=FILE to choose where the result goes (default: the lab cache's
# bench-TIME.json, the SVG beside it).
BENCH_N ?= 3
bench-lab:
	$(GO) run ./lab/cmd/seamless-lab bench -n $(BENCH_N) $(if $(BENCH_JSON),--json $(BENCH_JSON))

# SCALE_SIZES=64,512 to choose the sizes (MiB), SCALE_JSON=FILE where the result goes.
bench-scale:
	$(GO) run ./lab/cmd/seamless-lab scale $(if $(SCALE_SIZES),--sizes $(SCALE_SIZES)) $(if $(SCALE_JSON),--json $(SCALE_JSON))

# KMOD_HEADERS=DIR builds against linux-headers-* trees unpacked elsewhere.
kmod:
	sh kmod/build.sh

clean:
	rm -rf $(BIN) build kmod/build
