# GhostSync — every routine act is a target; `make help` lists them.
SWIFT ?= swift
BIND ?= 0.0.0.0:7777
APT_PACKAGES := libnuma-dev nats-server python3-venv

.PHONY: help deps build release reference-relay test test-tsan test-tsan-mailbox test-asan test-autobahn test-js test-browser test-cluster demo cluster-demo soak run run-example fuzz bench bench-check bench-baseline perf compare scale cluster-bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the build and tests need (libnuma-dev, nats-server, python3-venv) when missing
	@for pkg in $(APT_PACKAGES); do \
	  if ! dpkg -s $$pkg >/dev/null 2>&1; then \
	    echo "installing $$pkg"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkg >/dev/null; \
	  fi; \
	done

build: deps ## Debug build of everything
	$(SWIFT) build

release: deps ## Release build
	$(SWIFT) build -c release

test: deps ## Run the whole test suite (Swift Testing, real sockets on 127.0.0.1)
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-tsan: deps ## The whole suite under ThreadSanitizer (multi-worker tests included)
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

LOOPS ?= 100

test-tsan-mailbox: deps ## Mailbox and cache-line tests under ThreadSanitizer, optimised, LOOPS times (default 100)
	@# Optimised, because only specialised code lets TSan see the ring's slot accesses (a debug
	@# build moves commands through the unspecialised, uninstrumented standard library).
	$(SWIFT) build -c release --build-tests --sanitize=thread --scratch-path .build-tsan-release -Xswiftc -enable-testing
	@for i in $$(seq 1 $(LOOPS)); do \
	  $(SWIFT) test -c release --skip-build --sanitize=thread --scratch-path .build-tsan-release \
	    --filter "MailboxTests|CacheLineLayoutTests" > .build-tsan-release/loop.txt 2>&1 \
	    && ! grep -q ThreadSanitizer .build-tsan-release/loop.txt \
	    || { cat .build-tsan-release/loop.txt; echo "failed in run $$i of $(LOOPS)"; exit 1; }; \
	done; echo "$(LOOPS) runs, no failure, no TSan report"

run: deps ## Build and start the relay with default settings (rooms lobby, deathmatch, duel) on $(BIND)
	$(SWIFT) build -c release --product ghost-sync
	$$($(SWIFT) build -c release --show-bin-path)/ghost-sync relay --bind $(BIND) $(ARGS)

run-example: deps ## Build and start the minimal embedded example relay (Sources/GhostSyncExample)
	$(SWIFT) build -c release --product ghost-sync-example
	$$($(SWIFT) build -c release --show-bin-path)/ghost-sync-example $(BIND)

test-asan: deps ## Start/stop cycles, hostile TCP and WebSocket input under AddressSanitizer with leak checks
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=1 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan \
	  --disable-xctest --filter "LifecycleTests|HostileInputTests|LimitsTests|FrameDecoderTests|WireErrors|WebSocket"

test-autobahn: deps ## WebSocket conformance: Autobahn TestSuite against ghost-sync ws-echo (SKIPPED without Python 2.7)
	$(SWIFT) build --product ghost-sync
	Tests/Autobahn/test.sh $$($(SWIFT) build --show-bin-path)/ghost-sync

test-js: ## The browser client's tests: codec vectors, client behaviour, .d.ts (node --test; installs Debian nodejs and node-typescript when missing)
	@for pkg in nodejs:node node-typescript:tsc; do command -v $${pkg#*:} >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $${pkg%:*} >/dev/null; }; done
	node --test Tests/JavaScript/*.test.mjs

test-browser: deps ## The demo page in headless Chromium through the relay, with a TCP member (installs chromium, chromium-driver, selenium)
	$(SWIFT) build --product ghost-sync
	Tests/Browser/run.sh $$($(SWIFT) build --show-bin-path)/ghost-sync

test-cluster: deps ## The cluster suites: relays over a real nats-server (one, and a 3-server cluster), faults included
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter "Cluster|NATS|Registry"

cluster-demo: deps ## Three nats-servers and two relays on loopback; prints how to join each (Ctrl-C stops all)
	$(SWIFT) build -c release --product ghost-sync
	Benchmarks/cluster-demo.sh $$($(SWIFT) build -c release --show-bin-path)/ghost-sync

WS ?= 127.0.0.1:7780
demo: deps ## Start the relay with the browser demo page (open the printed URL; rooms lobby, deathmatch, duel)
	$(SWIFT) build -c release --product ghost-sync
	@echo "demo: open http://$(WS)/ in a browser (two tabs, or a tab and: ghost-sync join lobby --addr $(BIND))"
	$$($(SWIFT) build -c release --show-bin-path)/ghost-sync relay --bind $(BIND) --ws $(WS) $(ARGS)

soak: ## Soak: S1 with client and room churn for SOAK_SECONDS (default 600); not part of CI
	$(SWIFT) build -c release --product ghost-sync
	Benchmarks/soak.sh

SCENARIO ?= S1
FUZZ_SECONDS ?= 60
FUZZ_DIR := .build/fuzz

fuzz: ## Fuzz the frame decoder and message codecs with libFuzzer for FUZZ_SECONDS (default 60)
	mkdir -p $(FUZZ_DIR)/corpus
	cp -n Fuzz/corpus/wire/* $(FUZZ_DIR)/corpus/ 2>/dev/null || true
	swiftc -sanitize=fuzzer,address -parse-as-library -O -package-name GhostSync \
	  Sources/GhostSync/Wire/*.swift Fuzz/WireFuzzer.swift -o $(FUZZ_DIR)/wire-fuzzer
	$(FUZZ_DIR)/wire-fuzzer $(FUZZ_DIR)/corpus -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_DIR)/

BENCHMARK := GHOSTSYNC_BENCHMARKS=1 $(SWIFT) package --scratch-path .build-bench
THRESHOLDS := Benchmarks/Thresholds

bench: deps ## Micro-benchmarks (package-benchmark): codec, frame decoder, fan-out, mailbox, timer wheel
	$(BENCHMARK) benchmark --no-progress

bench-check: deps ## Fail if a micro-benchmark regressed past Benchmarks/Thresholds (mallocs exact, instructions 10%)
	@# swift package maps every plugin failure to status 1, "better than the thresholds"
	@# included, so the verdict is read from the tool's last line.
	@mkdir -p .build-bench; $(BENCHMARK) benchmark thresholds check --path $(THRESHOLDS) --no-progress \
	  2>&1 | tee .build-bench/bench-check.txt; \
	  if grep -q "is BETTER than the defined thresholds" .build-bench/bench-check.txt \
	     && ! grep -q "is WORSE than" .build-bench/bench-check.txt; then \
	    echo "bench-check: better than the thresholds; record it with make bench-baseline"; exit 0; fi; \
	  grep -q "is EQUAL to the defined thresholds" .build-bench/bench-check.txt

bench-baseline: deps ## Record the current micro-benchmark results as the thresholds bench-check holds to
	$(BENCHMARK) --allow-writing-to-package-directory benchmark thresholds update --path $(THRESHOLDS) --no-progress

perf: deps ## Profile the relay under SCENARIO (S1 default, S2, S3) with perf: top entries and a flame graph in .build/perf
	@command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
	$(SWIFT) build -c release --product ghost-sync
	SCENARIO=$(SCENARIO) Benchmarks/perf.sh

compare: deps reference-relay ## Scenarios S1 S1h S2 S2h S3 L1 S4 against GhostSync, the C reference relay (cref), Redis and NATS, pinned, side by side; flags SATURATED servers
	@for pkg in redis-server nats-server; do dpkg -s $$pkg >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null; }; done
	$(SWIFT) build -c release --product ghost-sync
	Benchmarks/compare.sh $(SCENARIOS)

REFERENCE_RELAY := .build/reference-relay/reference-relay

reference-relay: $(REFERENCE_RELAY) ## The C reference relay compare.sh runs as target cref (Benchmarks/ReferenceRelay)

$(REFERENCE_RELAY): Benchmarks/ReferenceRelay/reference_relay.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE $< -o $@

cluster-bench: deps ## What the NATS cluster costs: S1/S1h on one relay vs split over two clustered relays, ROUNDS (3) interleaved; not part of CI
	$(SWIFT) build -c release --product ghost-sync
	Benchmarks/cluster-bench.sh $(SCENARIOS)

scale: deps ## Scaling harness: relay on W = 1, 2, 4 … <= CPUs/2 pinned workers, load on the other CPUs; per-worker figures
	$(SWIFT) build -c release --product ghost-sync
	Benchmarks/scale.sh

clean: ## Remove build products
	rm -rf .build
