# Portcullis — `make run` (demo) and `make test` (everything) on Debian 12 as root.
SHELL := /bin/bash
ifeq ($(shell command -v swift 2>/dev/null),)
export PATH := $(PATH):/opt/swift/usr/bin
endif
CERTS := certs-example/generated

.PHONY: all deps certs build run test fuzz bench clean stop-test-clusters

all: build

deps:
	scripts/install-deps.sh

certs:
	certs-example/generate.sh $(CERTS)

build: deps
	swift build

run:
	scripts/run-demo.sh

# Unit tests and the integration tests (which start their own clusters and proxies), then a
# short bounded run of every fuzz target (docs/FUZZING.md). Whatever the outcome, leftovers of
# a killed test process are stopped afterwards.
test: deps certs
	swift build
	scripts/start-journald.sh
	status=0; swift test || status=$$?; scripts/stop-test-clusters.sh; \
	scripts/fuzz.sh short || status=1; exit $$status

# Every fuzz target for FUZZ_SECONDS (default 300) each, plus the network fuzzer.
fuzz: deps certs
	swift build
	scripts/fuzz.sh long

# Benchmarks use an optimised build.
bench: deps certs
	swift build -c release
	scripts/bench.sh

stop-test-clusters:
	scripts/stop-test-clusters.sh

clean: stop-test-clusters
	-scripts/pg-cluster.sh stop run/pgdata
	rm -rf .build run $(CERTS) Fuzz/.build Fuzz/.work
