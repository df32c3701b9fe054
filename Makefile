# Portcullis — `make run` (demo) and `make test` (everything) on Debian 12 as root.
SHELL := /bin/bash
ifeq ($(shell command -v swift 2>/dev/null),)
export PATH := $(PATH):/opt/swift/usr/bin
endif
CERTS := certs-example/generated

.PHONY: all deps certs build run test fuzz bench bench-profile regress client-suites clean stop-test-clusters

all: build

deps:
	scripts/install-deps.sh

certs:
	certs-example/generate.sh $(CERTS)

build: deps
	swift build

run:
	scripts/run-demo.sh

# Unit tests and the integration tests (which start their own clusters and proxies; the
# systemd unit tests boot a container whose root is built once and cached), PostgreSQL's
# regression suite through session and transaction mode (docs/TRANSACTION_POOLING.md, about
# 3 minutes), then a short bounded run of every fuzz target (docs/FUZZING.md). Whatever the
# outcome, leftovers of a killed test process are stopped afterwards, and the last lines
# name every failed XCTest case (CI shows only the tail of the output).
test: deps certs
	swift build
	scripts/start-journald.sh
	scripts/systemd-container.sh build || echo "systemd container root not built: SystemdUnitTests will be skipped"
	status=0; set -o pipefail; swift test 2>&1 | tee .build/swift-test.log || status=$$?; \
	scripts/stop-test-clusters.sh; \
	scripts/pg-regress.sh session transaction || status=1; \
	scripts/fuzz.sh short || status=1; \
	scripts/test-summary.sh .build/swift-test.log $$status; exit $$status

# PostgreSQL's regression suite directly, through session mode and through transaction mode.
regress: deps certs
	swift build
	scripts/pg-regress.sh

# The psycopg and asyncpg test suites directly, through session mode and through transaction
# mode (about 5 minutes; the three modes run side by side). Also part of `make bench`.
client-suites: deps certs
	swift build
	scripts/client-suites.sh

# Every fuzz target for FUZZ_SECONDS (default 300) each, plus the network fuzzer.
fuzz: deps certs
	swift build
	scripts/fuzz.sh long

# Benchmarks use an optimised build.
bench: deps certs
	swift build -c release
	status=0; scripts/bench.sh || status=$$?; \
	PORTCULLIS_BIN=.build/release/portcullis scripts/client-suites.sh || status=1; exit $$status

# Proxy and PostgreSQL CPU per transaction, Portcullis next to PgBouncer, with perf counts
# and profiles (docs/PERFORMANCE.md).
bench-profile: deps certs
	swift build -c release
	PROFILE_PERF=1 scripts/bench-profile.sh

stop-test-clusters:
	scripts/stop-test-clusters.sh

clean: stop-test-clusters
	-scripts/pg-cluster.sh stop run/pgdata
	rm -rf .build run $(CERTS) Fuzz/.build Fuzz/.work
