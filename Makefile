# seamless: seamless kernel updates for Linux.
#
#   make build   build the binaries into bin/
#   make test    install what the tests need, then vet and run every test (root)
#   make bench   checkpoint/restore throughput benchmarks (root)
#   make demo    build the QEMU lab and show a kernel update (root)
#   make kmod    build the kernel module for every kernel whose headers are installed

GO      ?= go
BIN     := bin
PKGS    := ./cmd/... ./internal/... ./test/... ./initramfs/...
DEBS    := gcc make libc6-dev iproute2 util-linux e2fsprogs
export GOFLAGS ?= -buildvcs=false

.PHONY: all build test unit roundtrip bench demo deps vet fmt-check clean kmod

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

# KMOD_HEADERS=DIR builds against linux-headers-* trees unpacked elsewhere.
kmod:
	sh kmod/build.sh

clean:
	rm -rf $(BIN) kmod/build
