# seamless: seamless kernel updates for Linux.
#
#   make build   build the binaries into bin/
#   make test    install what the tests need, then vet and run every test (root)
#   make bench   checkpoint/restore throughput benchmarks (root)
#   make demo    build the QEMU lab and show a kernel update (root)
#   make deb     build the Debian package into build/deb/ (docs/packaging.md)
#   make lab-all run every lab scenario, on every lab guest (root; hours)

GO      ?= go
BIN     := bin
PKGS    := ./cmd/... ./internal/... ./test/... ./initramfs/...
DEBS    := gcc make libc6-dev iproute2 util-linux e2fsprogs
DEBDIR  ?= build/deb
export GOFLAGS ?= -buildvcs=false

.PHONY: all build test unit roundtrip bench demo deb lab-all deps vet fmt-check clean

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

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -count 1 ./test/bench/

demo:
	bash lab/demo.sh

# dpkg-buildpackage -b -us -uc, out of the tree; the modules are fetched
# first so that the package build itself is offline.
deb: DEBS += debhelper dpkg-dev
deb: deps
	bash packaging/build-deb.sh $(DEBDIR)

lab-all:
	LAB_SCENARIOS=all bash lab/ci.sh

clean:
	rm -rf $(BIN) build
