# k2s-dns: the single entry point. `make help` lists the targets.
include versions.env

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export K2S_CACHE ?= $(HOME)/.cache/k2s-dns
export PATH := $(CURDIR)/bin:$(CURDIR)/.venv/bin:$(PATH)
VENV := .venv/.installed
PY := .venv/bin/python
CLUSTER_NAME ?= k2s-dns
# build: make every image here from pinned sources (air-gapped);
# pull: use the upstream images (a machine with internet and Docker).
IMAGE_SOURCE ?= build
KEEP_CLUSTER ?=
PYTEST_ARGS ?=
BENCH_SCALE ?= full
# BENCH_ONLY="heal throughput": measure only those sections (propagation throughput heal rollback peer), keep the others
# in bench/results.
BENCH_ONLY ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[test,bench]'
	touch $@

.PHONY: venv
venv: $(VENV) ## Python virtualenv with the test dependencies

bin/helm: versions.env
	tools/install.sh helm

bin/kind: versions.env
	tools/install.sh kind

bin/kubectl: versions.env
	tools/install.sh kubectl

bin/actionlint: versions.env
	tools/install.sh actionlint

bin/ct: versions.env
	tools/install.sh ct

bin/helm4: versions.env
	tools/install.sh helm4

.PHONY: tools
tools: ## Pinned helm, kind, kubectl, actionlint, ct (chart-testing) and helm4 into ./bin (built from Go modules)
	tools/install.sh helm kind kubectl actionlint ct helm4

.PHONY: lint
lint: $(VENV) bin/helm bin/ct bin/actionlint ## ruff, ct lint (yamale, yamllint, helm lint --strict per ci/*-values.yaml), helm lint of cluster mode, actionlint, README values table up to date
	ruff check src tests tools $(wildcard bench)
	ruff format --check src tests tools $(wildcard bench)
	ct lint --config ct.yaml --charts charts/k2s-dns
	helm lint --strict charts/k2s-dns --set etcd.mode=cluster
	yamllint -c .yamllint ct.yaml
	$(PY) tools/values_table.py --check README.md
	actionlint

.PHONY: docs
docs: $(VENV) ## Regenerate README's values table from values.yaml
	$(PY) tools/values_table.py --write README.md

.PHONY: test
test: lint bin/kubectl ## Unit tier: chart rendering, schema, Corefile patcher (no cluster)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: ct-install
ct-install: bin/ct bin/helm bin/kubectl ## ct install on KUBECONFIG (images preloaded): install, helm test, uninstall per charts/k2s-dns/ci/*-values.yaml
	@context=$$(kubectl config current-context) && echo "ct install against kubectl context $$context"
	ct install --config ct.yaml --charts charts/k2s-dns

.PHONY: images
images: $(VENV) ## Build (air-gapped) or pull every image the cluster and the chart need
ifeq ($(IMAGE_SOURCE),build)
	images/all.sh
else
	docker pull registry.k8s.io/external-dns/external-dns:$(EXTERNAL_DNS_VERSION)
	docker pull registry.k8s.io/etcd:$(ETCD_IMAGE_TAG)
	docker pull docker.io/cloudnativelabs/kube-router:$(KUBE_ROUTER_VERSION)
	docker pull docker.io/rancher/local-path-provisioner:$(LOCAL_PATH_PROVISIONER_VERSION)
	docker build -f images/hook/Dockerfile -t $$($(PY) tools/chart_image.py coredns.patch.image) .
endif

CHART_VERSION = $(shell awk '/^version:/ {print $$2; exit}' charts/k2s-dns/Chart.yaml)

.PHONY: package
package: $(VENV) bin/helm ## dist/: the chart (k2s-dns-VERSION.tgz, helm package) and its hook image (k2s-dns-hook-VERSION.tar, docker save)
	mkdir -p dist
	helm package charts/k2s-dns --destination dist
ifeq ($(IMAGE_SOURCE),build)
	images/engine/docker.sh up
	images/hook/build.sh
else
	docker build -f images/hook/Dockerfile -t $$($(PY) tools/chart_image.py coredns.patch.image) .
endif
	ref=$$($(PY) tools/chart_image.py coredns.patch.image); \
	  echo "saving $$ref"; docker save "$$ref" -o dist/k2s-dns-hook-$(CHART_VERSION).tar
	ls -l dist/k2s-dns-$(CHART_VERSION).tgz dist/k2s-dns-hook-$(CHART_VERSION).tar

.PHONY: cluster
cluster: $(VENV) bin/kind bin/kubectl images ## Start the two-node kind test cluster (kube-router, local-path storage) and load the chart images
	tests/cluster/up.sh $(CLUSTER_NAME)

.PHONY: cluster-down
cluster-down: ## Delete the kind cluster and stop the container engine this project started
	tests/cluster/down.sh $(CLUSTER_NAME)

.PHONY: e2e
e2e: $(VENV) bin/helm bin/helm4 bin/ct bin/kubectl bin/kind ## End-to-end suite on kind (or on KUBECONFIG if set)
	tests/cluster/e2e.sh $(CLUSTER_NAME) $(PYTEST_ARGS)

.PHONY: bench
bench: $(VENV) bin/helm bin/kubectl bin/kind ## Benchmarks on KUBECONFIG or the make-cluster cluster, and the peer k8s_gateway: table + plots in bench/results (BENCH_SCALE=small|full)
	command -v dnsperf >/dev/null || { apt-get update -qq && apt-get install -y -qq dnsperf >/dev/null; }
	$(PY) -m bench --scale $(BENCH_SCALE) $(foreach s,$(BENCH_ONLY),--only $(s))
	$(PY) tools/bench_table.py

.PHONY: clean
clean: ## Remove local build outputs (not the shared cache in K2S_CACHE)
	rm -rf .venv bin .pytest_cache .ruff_cache build dist *.egg-info src/*.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
