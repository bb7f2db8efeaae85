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
	$(BIN)/zizmor --offline --no-progress --persona=auditor .github/workflows

test: setup ## the whole test suite: lint, pytest (all folders), Molecule scenarios
	@mkdir -p .mlship/reports
	@# Molecule (systemd containers, mostly waiting on them) runs beside lint and pytest, at a lower CPU
	@# priority: pytest (real servers on wall-clock deadlines) is the longer of the two and sets the
	@# suite's time. Lint and the checkov install run side by side before pytest. Molecule's log is
	@# printed when everything is done; any part failing fails the target.
	@echo "Molecule scenarios run in the background: .mlship/reports/molecule.log"
	@nice -n 10 $(MAKE) --no-print-directory test-ansible > .mlship/reports/molecule.log 2>&1 & molecule=$$!; \
	  $(MAKE) --no-print-directory checkov-venv > .mlship/reports/checkov-install.log 2>&1 & checkov=$$!; \
	  lint_rc=0; $(MAKE) --no-print-directory lint || lint_rc=$$?; \
	  checkov_rc=0; wait $$checkov || checkov_rc=$$?; cat .mlship/reports/checkov-install.log; \
	  pytest_rc=0; \
	  if [ $$lint_rc -eq 0 ] && [ $$checkov_rc -eq 0 ]; then \
	    $(BIN)/pytest --durations=30 --junitxml=.mlship/reports/junit.xml || pytest_rc=$$?; \
	  else pytest_rc=1; echo "pytest not run: lint exit $$lint_rc, checkov install exit $$checkov_rc"; fi; \
	  molecule_rc=0; wait $$molecule || molecule_rc=$$?; \
	  cat .mlship/reports/molecule.log; \
	  echo "lint exit $$lint_rc, pytest exit $$pytest_rc, Molecule exit $$molecule_rc"; \
	  [ $$lint_rc -eq 0 ] && [ $$pytest_rc -eq 0 ] && [ $$molecule_rc -eq 0 ]

bench: setup ## benchmarks; figures printed and written to .mlship/bench/ (QUICK=1 for smoke sizes)
	$(BIN)/python -m devtools.bench $(if $(QUICK),--quick,)
	$(BIN)/python -m mlship.model.compute $(if $(QUICK),--quick,)

reliability: setup checkov-venv ## reliability and security campaign (full); table in .mlship/reports/
	$(BIN)/python -m devtools.reliability

clean: ## stop the local environment and remove state
	-$(MLSHIP) local down
	rm -rf .mlship

# --- Release: each step of .github/workflows/release.yml, runnable by hand in the same order ----------
# make release-train; make release-gate VERSION=v; make release-model-export VERSION=v
# make release-image STACK=s VERSION=v [PUSH=1|EXPORT=dir]; make release-preflight STACK=s VERSION=v
# (another machine: make release-model-import); make pulumi-cli kubectl-cli
# make release-deploy STACK=s [STABLE_FROM=cluster|config]; make release-canary STACK=s VERSION=v
# (exits 10 on rollback: stop there); make release-record STACK=s VERSION=v
STACK ?= dev
VERSION ?=
RELEASE_DIR := .mlship/release
TOOLS := $(CURDIR)/.mlship/bin
# Pinned tools, each verified against its SHA-256 before use (versions.yaml says where each was checked).
# The CLI may be older than the SDK in requirements.lock (the Automation API needs >= 3.1.0).
PULUMI_VERSION := 3.253.0
PULUMI_SHA256 := 33161e521280e6c77395a46344dba5ff9c118a90df254801e662087143b4d1ac
KUBECTL_VERSION := v1.34.3
KUBECTL_SHA256 := ab60ca5f0fd60c1eb81b52909e67060e3ba0bd27e55a8ac147cbc2172ff14212
PULUMI := $(TOOLS)/pulumi
KUBECTL := $(TOOLS)/kubectl
export KUBECTL
# In CI (RUNNER_TEMP set by the runner, emptied at the start and end of every job) credentials live there,
# never in the runner user's ~/.kube or ~/.docker: a persistent self-hosted runner keeps no kubeconfig or
# registry password after the job. By hand, your own KUBECONFIG and DOCKER_CONFIG are used.
ifdef RUNNER_TEMP
export KUBECONFIG := $(RUNNER_TEMP)/mlship-kubeconfig
export DOCKER_CONFIG := $(RUNNER_TEMP)/mlship-docker
endif
.PHONY: release-train release-gate release-model-export release-model-import release-image release-preflight
.PHONY: release-deploy release-canary release-record release-cleanup registry-login pulumi-cli kubectl-cli kubeconfig

release-train: venv ## train and register the model; its version is in .mlship/release/version
	@mkdir -p $(RELEASE_DIR)
	$(MLSHIP) model train --json > $(RELEASE_DIR)/train.json
	$(BIN)/python -c "import json; print(json.load(open('$(RELEASE_DIR)/train.json'))['tag'].split(':')[1])" > $(RELEASE_DIR)/version
	@echo "model version $$(cat $(RELEASE_DIR)/version)"
	@if [ -n "$${GITHUB_OUTPUT:-}" ]; then echo "version=$$(cat $(RELEASE_DIR)/version)" >> "$$GITHUB_OUTPUT"; fi

release-gate: venv ## quality gate of VERSION (exits 9 on a veto)
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	$(MLSHIP) model validate $(VERSION)

release-model-export: venv ## VERSION with its gate verdict into .mlship/release/model (+ SHA256SUMS)
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	$(MLSHIP) model export $(VERSION) --out $(RELEASE_DIR)/model

release-model-import: venv ## import .mlship/release/model (checked against its SHA256SUMS) on this machine
	$(MLSHIP) model import $(RELEASE_DIR)/model

release-image: venv docker ## image <STACK's repository>:VERSION; PUSH=1 pushes it, EXPORT=DIR saves it (SHA256SUMS)
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	$(MLSHIP) build --containerize --offline --stack $(STACK) --model $(VERSION) $(if $(PUSH),--push,) $(if $(EXPORT),--export $(EXPORT),)

release-preflight: venv docker ## run STACK's pods (VERSION as the canary) in Docker as the pod specs say
	$(MLSHIP) preflight --stack $(STACK) $(if $(VERSION),--canary $(VERSION),)

release-deploy: venv ## pulumi up of STACK, refused if it would change a stable version (STABLE_FROM=cluster|config)
	PATH="$(TOOLS):$$PATH" $(MLSHIP) deploy --stack $(STACK) $(if $(STABLE_FROM),--stable-from $(STABLE_FROM),)

release-canary: venv ## canary VERSION on STACK (Prometheus via kubectl port-forward unless PROMETHEUS_URL); exits 10 on rollback
	@test -n "$(VERSION)" || { echo "VERSION=<model version> is required"; exit 2; }
	@mkdir -p $(RELEASE_DIR)
	PATH="$(TOOLS):$$PATH" $(MLSHIP) canary run $(VERSION) --env $(STACK) \
	  $(if $(PROMETHEUS_URL),--prometheus-url $(PROMETHEUS_URL),) --json > $(RELEASE_DIR)/canary-$(STACK).json

release-record: ## commit the stack config the canary changed (a copy of the cluster's release record); push it in CI
	git -c user.name="mlship release" -c user.email="release@mlship.invalid" \
	  commit -m "release: $(VERSION) promoted on $(STACK)" -- pulumi/Pulumi.$(STACK).yaml
	@if [ -n "$${GITHUB_TOKEN:-}" ]; then \
	  url="https://x-access-token:$${GITHUB_TOKEN}@github.com/$${GITHUB_REPOSITORY}.git"; \
	  git fetch --quiet "$$url" "$${RELEASE_BRANCH:-main}" && git rebase --quiet FETCH_HEAD && \
	  git push --quiet "$$url" "HEAD:$${RELEASE_BRANCH:-main}"; \
	fi

registry-login: ## docker login to $$REGISTRY (credentials in $$DOCKER_CONFIG: a job-scoped folder in CI)
	@test -n "$$REGISTRY" && test -n "$$REGISTRY_USER" || { echo "set REGISTRY, REGISTRY_USER, REGISTRY_PASSWORD"; exit 2; }
	@printf '%s' "$$REGISTRY_PASSWORD" | docker login --username "$$REGISTRY_USER" --password-stdin "$$REGISTRY"

pulumi-cli: ## the Pulumi CLI PULUMI_VERSION into .mlship/bin, SHA-256 checked
	@if [ "$$($(PULUMI) version 2>/dev/null)" = "v$(PULUMI_VERSION)" ]; then exit 0; fi; \
	mkdir -p $(TOOLS) .mlship/tools && tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	curl -fsSL --proto '=https' --tlsv1.2 -o "$$tmp/pulumi.tgz" \
	  https://get.pulumi.com/releases/sdk/pulumi-v$(PULUMI_VERSION)-linux-x64.tar.gz && \
	echo "$(PULUMI_SHA256)  $$tmp/pulumi.tgz" | sha256sum --check --quiet - && \
	rm -rf .mlship/tools/pulumi && tar -xzf "$$tmp/pulumi.tgz" -C .mlship/tools && \
	for f in .mlship/tools/pulumi/*; do ln -sf "$(CURDIR)/$$f" $(TOOLS)/; done && $(PULUMI) version

kubectl-cli: ## kubectl KUBECTL_VERSION into .mlship/bin, SHA-256 checked (the canary's port-forward)
	@if $(KUBECTL) version --client 2>/dev/null | grep -q "Client Version: $(KUBECTL_VERSION)$$"; then exit 0; fi; \
	mkdir -p $(TOOLS) && tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	curl -fsSL --proto '=https' --tlsv1.2 -o "$$tmp/kubectl" https://dl.k8s.io/release/$(KUBECTL_VERSION)/bin/linux/amd64/kubectl && \
	echo "$(KUBECTL_SHA256)  $$tmp/kubectl" | sha256sum --check --quiet - && \
	install -m 0755 "$$tmp/kubectl" $(KUBECTL) && $(KUBECTL) version --client

kubeconfig: ## write $$KUBECONFIG_DATA (a kubeconfig, base64) to $$KUBECONFIG (mode 0600)
	@test -n "$$KUBECONFIG" && test -n "$$KUBECONFIG_DATA" || { echo "set KUBECONFIG and KUBECONFIG_DATA"; exit 2; }
	@umask 077 && mkdir -p "$$(dirname "$$KUBECONFIG")" && printf '%s' "$$KUBECONFIG_DATA" | base64 -d > "$$KUBECONFIG"

release-cleanup: ## CI: remove the job's kubeconfig and registry credentials (only files under $$RUNNER_TEMP)
	@if [ -z "$${RUNNER_TEMP:-}" ]; then echo "release-cleanup removes CI credentials under RUNNER_TEMP only"; \
	else for f in "$(KUBECONFIG)" "$(DOCKER_CONFIG)"; do \
	  case "$$f" in "$$RUNNER_TEMP"/mlship-*) rm -rf -- "$$f"; echo "removed $$f";; esac; \
	done; fi

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
