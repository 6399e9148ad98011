# mstperf: the two commands a user needs are `make run` and `make test`.
# Everything else here is what those two are made of.
SHELL := /bin/bash
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps build test unit integration e2e bench up down run images tools clean help

all: build

help:
	@echo "make run      install what is missing, build, start the suite, find the MST of the simulator"
	@echo "make test     unit + integration tests (what CI runs)"
	@echo "make e2e      long end-to-end checks (containers, full searches)"
	@echo "make bench    benchmarks; results go to BENCHMARKS.md by hand"
	@echo "make up/down  start/stop the suite on loopback (logs in .run/logs)"
	@echo "make images   container images with podman/buildah"
	@echo "make tools    build grpcurl, helm and the dashboard linter from the Go module proxy"

deps:
	@scripts/deps.sh

# Configure every time (a second when nothing changed): service and test folders are picked
# up by existence, which CMake only sees at configure time.
build:
	@scripts/deps.sh
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Unit tests run in parallel; integration tests one at a time, since several of them check
# timing and rates on real sockets and two cores are all CI has.
test: build tools
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS) $(CTEST_ARGS)
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration $(CTEST_ARGS)

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS) $(CTEST_ARGS)

integration: build tools
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration $(CTEST_ARGS)

e2e: build tools
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e $(CTEST_ARGS)

bench: build
	scripts/bench.sh

tools:
	@scripts/tools.sh

up: build
	scripts/up.sh

down:
	scripts/down.sh

run: build
	scripts/run-demo.sh

images:
	scripts/images.sh

clean:
	rm -rf $(BUILD_DIR)
