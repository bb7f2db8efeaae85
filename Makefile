# mlship: `make demo` and `make test` install what they need themselves (Debian/Ubuntu).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MLSHIP := $(BIN)/mlship
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || echo sudo)
APT_PACKAGES := $(if $(shell command -v dockerd),,docker.io) debootstrap prometheus prometheus-node-exporter haproxy wrk
STAMP_SYSTEM := .mlship/.system-ready
STAMP_VENV := $(VENV)/.installed

.PHONY: help setup system venv docker demo test lint bench reliability clean checkov-venv

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: system venv docker ## install system packages, the Python environment, start Docker

system: $(STAMP_SYSTEM)
$(STAMP_SYSTEM):
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# Debian starts packaged daemons; mlship runs its own Prometheus/HAProxy on loopback. Stop only
	@# the packaged ones (their service, their user, their config file), never an mlship environment.
	@for svc in prometheus haproxy prometheus-node-exporter; do \
	  $(SUDO) systemctl disable --now $$svc >/dev/null 2>&1 || $(SUDO) service $$svc stop >/dev/null 2>&1 || true; done
	@$(SUDO) pkill -u prometheus -x prometheus >/dev/null 2>&1 || true
	@$(SUDO) pkill -u prometheus -x prometheus-node >/dev/null 2>&1 || true
	@$(SUDO) pkill -f '^/usr/sbin/haproxy .*-f /etc/haproxy/haproxy.cfg' >/dev/null 2>&1 || true
	@mkdir -p .mlship && touch $@

venv: $(STAMP_VENV)
$(STAMP_VENV): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (requirements.lock)"
	@$(BIN)/pip install -q --upgrade pip==25.3
	@$(BIN)/pip install -q -r requirements.lock
	@$(BIN)/pip install -q --no-deps -e .
	@touch $@

docker: system ## start the Docker engine if none answers
	@if ! docker info >/dev/null 2>&1; then \
	  echo "starting dockerd"; ($(SUDO) dockerd >/var/log/dockerd.log 2>&1 &); \
	  for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not start, see /var/log/dockerd.log"; exit 1; }; \
	fi

demo: setup ## train, build, run the local environment, release a good and a bad model
	$(MLSHIP) demo

lint: venv ## ruff, mypy, yamllint, actionlint and zizmor (ansible-lint runs in test-ansible)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s .
	$(BIN)/actionlint -no-color .github/workflows/*.yml
	$(BIN)/zizmor --offline --no-progress .github/workflows

test: setup lint checkov-venv ## the whole test suite: lint, pytest (all folders), Molecule scenarios
	@mkdir -p .mlship/reports
	$(BIN)/pytest --junitxml=.mlship/reports/junit.xml
	$(MAKE) --no-print-directory test-ansible

bench: setup ## benchmarks; figures printed and written to .mlship/bench/ (QUICK=1 for smoke sizes)
	$(BIN)/python -m devtools.bench $(if $(QUICK),--quick,)
	$(BIN)/python -m mlship.model.compute $(if $(QUICK),--quick,)

reliability: setup checkov-venv ## reliability and security campaign (full); table in .mlship/reports/
	$(BIN)/python -m devtools.reliability

clean: ## stop the local environment and remove state
	-$(MLSHIP) local down
	rm -rf .mlship

# --- Release: each step of .github/workflows/release.yml, runnable by hand in the same order ----------
# make release-train; make release-gate VERSION=v; make release-image STACK=s VERSION=v [PUSH=1|EXPORT=dir]
# make release-preflight STACK=s VERSION=v; make release-deploy STACK=s
# make release-canary STACK=s VERSION=v PROMETHEUS_URL=url (exits 10 on rollback: stop there)
STACK ?= dev
VERSION ?=
PULUMI ?= $(shell command -v pulumi || echo $$HOME/.pulumi/bin/pulumi)
PULUMI_VERSION := 3.271.0  # the CLI release of the pulumi SDK in requirements.lock
RELEASE_DIR := .mlship/release
.PHONY: release-train release-gate release-image release-preflight release-deploy release-canary release-record
.PHONY: registry-login pulumi-cli kubeconfig

release-train: venv ## train and register the model; its version is in .mlship/release/version
	@mkdir -p $(RELEASE_DIR)
	$(MLSHIP) model train --json > $(RELEASE_DIR)/train.json
	$(BIN)/python -c "import json; print(json.load(open('$(RELEASE_DIR)/train.json'))['tag'].split(':')[1])" > $(RELEASE_DIR)/version
	@echo "model version $$(cat $(RELEASE_DIR)/version)"
	@if [ -n "$${GITHUB_OUTPUT:-}" ]; then echo "version=$$(cat $(RELEASE_DIR)/version)" >> "$$GITHUB_OUTPUT"; fi

release-gate: venv ## quality gate of VERSION (exits 1 on a veto)
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	$(MLSHIP) model validate $(VERSION)

release-image: venv docker ## image <STACK's repository>:VERSION; PUSH=1 pushes it, EXPORT=DIR saves it (SHA256SUMS)
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	$(MLSHIP) build --containerize --offline --stack $(STACK) --model $(VERSION) $(if $(PUSH),--push,) $(if $(EXPORT),--export $(EXPORT),)

release-preflight: venv docker ## run STACK's pods (VERSION as the canary) in Docker as the pod specs say
	$(MLSHIP) preflight --stack $(STACK) $(if $(VERSION),--canary $(VERSION),)

release-deploy: ## pulumi up of STACK (needs the Pulumi CLI and a kubeconfig)
	$(PULUMI) up --yes --skip-preview --stack $(STACK) --cwd pulumi

release-canary: venv ## canary VERSION on STACK; exits 10 on rollback
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	@test -n "$(PROMETHEUS_URL)" || { echo "PROMETHEUS_URL=<the cluster's Prometheus> is required"; exit 2; }
	@mkdir -p $(RELEASE_DIR)
	PATH="$$(dirname $(PULUMI)):$$PATH" $(MLSHIP) canary run $(VERSION) --env $(STACK) \
	  --prometheus-url $(PROMETHEUS_URL) --json > $(RELEASE_DIR)/canary-$(STACK).json

release-record: ## commit the stack config the canary changed (the record of what STACK runs); push it in CI
	git -c user.name="mlship release" -c user.email="release@mlship.invalid" \
	  commit -m "release: $(VERSION) promoted on $(STACK)" -- pulumi/Pulumi.$(STACK).yaml
	@if [ -n "$${GITHUB_TOKEN:-}" ]; then \
	  url="https://x-access-token:$${GITHUB_TOKEN}@github.com/$${GITHUB_REPOSITORY}.git"; \
	  git fetch --quiet "$$url" "$${RELEASE_BRANCH:-main}" && git rebase --quiet FETCH_HEAD && \
	  git push --quiet "$$url" "HEAD:$${RELEASE_BRANCH:-main}"; \
	fi

registry-login: ## docker login to $$REGISTRY with $$REGISTRY_USER / $$REGISTRY_PASSWORD (before PUSH=1)
	@test -n "$$REGISTRY" && test -n "$$REGISTRY_USER" || { echo "set REGISTRY, REGISTRY_USER, REGISTRY_PASSWORD"; exit 2; }
	@printf '%s' "$$REGISTRY_PASSWORD" | docker login --username "$$REGISTRY_USER" --password-stdin "$$REGISTRY"

pulumi-cli: ## install the Pulumi CLI (PULUMI_VERSION) into ~/.pulumi
	curl -fsSL https://get.pulumi.com | sh -s -- --version $(PULUMI_VERSION)

kubeconfig: ## write $$KUBECONFIG_DATA (a kubeconfig, base64) to $$KUBECONFIG
	@test -n "$$KUBECONFIG" && test -n "$$KUBECONFIG_DATA" || { echo "set KUBECONFIG and KUBECONFIG_DATA"; exit 2; }
	@umask 077 && mkdir -p "$$(dirname "$$KUBECONFIG")" && printf '%s' "$$KUBECONFIG_DATA" | base64 -d > "$$KUBECONFIG"

# checkov pins dependencies that conflict with the project's: it gets its own venv (pulumi tests use it).
CHECKOV_VERSION := 3.3.30
STAMP_CHECKOV := .venv-checkov/.installed-$(CHECKOV_VERSION)

checkov-venv: $(STAMP_CHECKOV) ## checkov in its own venv (.venv-checkov)
$(STAMP_CHECKOV):
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	@echo "installing checkov $(CHECKOV_VERSION) into .venv-checkov"
	@.venv-checkov/bin/pip install -q --upgrade pip==25.3
	@.venv-checkov/bin/pip install -q checkov==$(CHECKOV_VERSION)
	@rm -f .venv-checkov/.installed-* && touch $@

# Ansible: lint (production profile) and every Molecule scenario on systemd containers built from a
# Debian rootfs. Prints wall time and testinfra results per scenario (logs in .mlship/molecule/).
.PHONY: test-ansible
test-ansible: setup ## Ansible: ansible-lint (production), yamllint, all Molecule scenarios
	$(MLSHIP) images build systemd
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint ansible roles molecule inventory
	$(BIN)/yamllint -s ansible roles molecule inventory .ansible-lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tests/ansible/run_molecule.py $(SCENARIOS)
