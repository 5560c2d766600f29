# dc-operator — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is a step of those two.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_MODULES_STAMP := node_modules/.package-lock.json

# --- the pinned Node (.nvmrc) ---------------------------------------------------------------
# Every target, tests and benchmarks included, runs on it: node on PATH when it is new enough,
# else the npm package node-linux-<arch> unpacked into ~/.cache/dc-operator/node/<version>/
# (scripts/node/ensure.sh, which prints the one line naming the Node in use). The system's Node
# is never replaced; only make's own PATH changes.
NODE_BIN_DIR := $(shell bash scripts/node/ensure.sh --print-bin-dir)
ifneq ($(.SHELLSTATUS),0)
$(error scripts/node/ensure.sh could not provide Node $(shell cat .nvmrc); see the line above)
endif
export PATH := $(NODE_BIN_DIR):$(PATH)

.PHONY: help
help:
	@echo "make demo                 run dc-operator end to end: on a real node (kubelet, containerd) where possible"
	@echo "make test                 lint, typecheck, unit, integration and interop tests"
	@echo "make e2e                  the e2e tests (test/e2e) on a real node: kubelet, containerd, the image built here"
	@echo "make control-plane        find or build kube-apiserver, etcd and helm (cached)"
	@echo "make control-plane-up     start a local etcd + kube-apiserver, kubeconfig in .dev/kubeconfig"
	@echo "make control-plane-down   stop it and clean up"
	@echo "make bench                run the benchmarks in bench/"
	@echo "make fuzz                 fuzz every target for FUZZ_SECONDS (default 60) each, or TARGET=name"
	@echo "make node-version         print the version and path of the Node that make's targets use"
	@echo "make crds                 regenerate crds/ from the TypeScript API (src/operator/api)"
	@echo "make manifests            copy crds/ into the chart, render manifests/install.yaml from it"

.PHONY: node-version
node-version:
	@echo "$$(node --version) $$(command -v node)"

# --- dependencies ---------------------------------------------------------------------------
$(NODE_MODULES_STAMP): package.json package-lock.json .nvmrc
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: $(NODE_MODULES_STAMP) system-deps

# OS packages the tests drive as real peers (NSS tstclnt, ...). Installs only what is missing.
.PHONY: system-deps
system-deps:
	@bash scripts/system-deps.sh

# --- build, lint ----------------------------------------------------------------------------
.PHONY: build
# The native AEAD of the TLS record path (src/tls/native/aead.c) is built with the machine's C
# compiler into dist/ (cached by source hash); without one the record layer uses node:crypto.
build: $(NODE_MODULES_STAMP)
	npx tsc -p tsconfig.json
	npx tsc -p tsconfig.tls.json
	node scripts/build-native.mjs

.PHONY: lint
lint: $(NODE_MODULES_STAMP)
	npx eslint .

# --- generated files -------------------------------------------------------------------------
# crds/*.yaml come from src/operator/api/v1alpha1.ts; a unit test fails when they are stale.
.PHONY: crds
crds: build
	node dist/src/operator/api/generate-crds.js

# The chart carries copies of crds/ (charts/dc-operator/files/crds/) and manifests/install.yaml is
# rendered from the chart with the pinned helm; packaging tests fail when either drifts.
MANIFESTS_HELM_ARGS := template dc-operator charts/dc-operator --namespace dc-operator --include-crds --set namespace.create=true
.PHONY: manifests
manifests: control-plane
	rm -f charts/dc-operator/files/crds/*.yaml
	cp crds/*.yaml charts/dc-operator/files/crds/
	@helm="$$(bash scripts/control-plane/ensure.sh --print-dir)/helm" && \
	{ echo "# Rendered by \`make manifests\` from charts/dc-operator. Do not edit; change the chart and re-run."; \
	  echo "# helm $(MANIFESTS_HELM_ARGS)"; \
	  "$$helm" $(MANIFESTS_HELM_ARGS); } > manifests/install.yaml.tmp && mv manifests/install.yaml.tmp manifests/install.yaml
	@echo "wrote manifests/install.yaml"

# --- tests ----------------------------------------------------------------------------------
.PHONY: test
test: deps build lint test-unit test-interop control-plane test-integration test-e2e

.PHONY: test-unit
test-unit: build
	node scripts/run-tests.mjs unit

.PHONY: test-interop
test-interop: build system-deps
	node scripts/run-tests.mjs interop --test-concurrency=1

.PHONY: test-integration
test-integration: build control-plane
	node scripts/run-tests.mjs integration --test-concurrency=1

# A real single-node cluster in namespaces of its own (scripts/e2e/cluster.sh: builds or finds the
# node's binaries and the image, tears everything down, checks nothing is left). Needs root and
# unshare; elsewhere it fails with one line. `make test E2E=skip` skips it, loudly.
.PHONY: e2e
e2e: build
	@bash scripts/e2e/cluster.sh run --keep-logs .dev/logs/e2e -- \
	  node --enable-source-maps --test --test-concurrency=1 --test-reporter=spec dist/test/e2e/*.test.js

.PHONY: test-e2e
test-e2e: build
ifeq ($(E2E),skip)
	@echo "!!!!! E2E=skip: the end-to-end tests on a real node (make e2e) were NOT run !!!!!"
else
	@$(MAKE) --no-print-directory e2e
endif

# --- fuzzing (test/fuzz/README.md) ----------------------------------------------------------
# `make test` runs a few seconds of each target in the unit suite (test/unit/fuzz/).
# `make fuzz` runs each target (or TARGET=a,b) for FUZZ_SECONDS; new inputs go to .dev/fuzz/corpus/,
# crashing ones to test/fuzz/crashes/<target>/ with the command that replays them.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: build
	node dist/test/fuzz/cli.js run --seconds $(FUZZ_SECONDS) $(if $(TARGET),--target $(TARGET)) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

# Replays one input: make fuzz-repro TARGET=tls-codec INPUT=test/fuzz/crashes/tls-codec/crash-...
.PHONY: fuzz-repro
fuzz-repro: build
	node dist/test/fuzz/cli.js repro --target $(TARGET) --input $(INPUT)

# Regenerates the seed corpora (test/fuzz/corpus/*/seed-*) and test/fuzz/fixtures/.
.PHONY: fuzz-corpus
fuzz-corpus: build
	node dist/test/fuzz/generate-corpus.js

# --- control plane --------------------------------------------------------------------------
# Binaries: $KUBEBUILDER_ASSETS, else ~/.cache/dc-operator/k8s/<version>/, else the envtest
# archive, else built from source through the Go module proxy (versions: scripts/control-plane/versions.env).
.PHONY: control-plane
control-plane:
	@bash scripts/control-plane/ensure.sh

# Starts etcd + kube-apiserver in the background; state in .dev/control-plane, logs in .dev/logs.
.PHONY: control-plane-up
control-plane-up: $(NODE_MODULES_STAMP) control-plane
	@bash scripts/control-plane/up.sh

.PHONY: control-plane-down
control-plane-down:
	@bash scripts/control-plane/down.sh

# --- demo, bench ----------------------------------------------------------------------------
.PHONY: demo
# On the real node (kubelet, containerd: scripts/e2e/cluster.sh) where the machine allows it (root,
# namespaces), else on the local control plane; its first line says which (scripts/e2e/demo.sh).
# CLUSTER=local: the control plane alone; CLUSTER=current: the current kubeconfig; CLUSTER=node: insist.
demo: deps build control-plane
	@bash scripts/e2e/demo.sh $(CLUSTER)

.PHONY: bench
# Every benchmark, or one: `make bench BENCH=tls-handshake`. Results and the commands that made
# them are in bench/results/. Benchmarks are not tests: they print numbers, they do not judge.
BENCH ?= $(filter-out %-support,$(basename $(notdir $(wildcard bench/*.ts))))
bench: build
	@for b in $(BENCH); do echo "== bench/$$b.ts"; node dist/bench/$$b.js || exit 1; done

.PHONY: clean
clean: control-plane-down
	rm -rf dist .dev
