# mlship: `make demo` and `make test` install what they need themselves (Debian/Ubuntu).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MLSHIP := $(BIN)/mlship
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || echo sudo)
APT_PACKAGES := docker.io debootstrap prometheus prometheus-node-exporter haproxy wrk
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

lint: venv ## ruff, mypy, yamllint (ansible-lint runs in test-ansible)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s .

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
