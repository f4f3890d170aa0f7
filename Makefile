# flora.deploy: `make demo` runs the deploy against a local AWS; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/flora/deploy
SANITY_ROOT := build/sanity/ansible_collections
DOTENV_READER := tests/fixtures/dotenv-reader
# The frontend publish tests build the fixture app with the pnpm its packageManager field names.
PNPM_VERSION := 10.34.9
APT_PACKAGES := python3 python3-venv python3-pip git rsync ca-certificates openssh-client podman runc debootstrap postgresql haproxy nginx-light chromium
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help deps venv link node-deps test checks unit integration hosts image sanity lint ruff demo bench build ee molecule clean

help:
	@echo "make demo   run the deploy end to end against a local AWS emulator"
	@echo "make test   install what the tests need, then run every test"
	@echo "make bench  benchmarks against today's tools (not part of make test)"

# Debian packages, installed once (as root on a fresh Debian 12).
.cache/apt.stamp:
	@mkdir -p .cache
	@wanted="$(APT_PACKAGES)"; command -v node >/dev/null && command -v npm >/dev/null || wanted="$$wanted nodejs npm"; \
	missing=$$(for p in $$wanted; do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@
deps: .cache/apt.stamp

# On Debian's python3, the interpreter a fresh Debian 12 machine has, even where another python3 comes first on
# PATH: ansible-playbook ran 15 to 20 % faster on it than on an unoptimised build of the same version.
$(VENV)/.installed: requirements.txt | .cache/apt.stamp
	$$(command -v /usr/bin/python3 || command -v python3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@
venv: $(VENV)/.installed

$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	ln -sfn ../../.. $@
link: $(COLLECTION_LINK)

$(DOTENV_READER)/node_modules/.installed: $(DOTENV_READER)/package-lock.json | .cache/apt.stamp
	cd $(DOTENV_READER) && npm ci --no-audit --no-fund --silent
	@touch $@
node-deps: $(DOTENV_READER)/node_modules/.installed
	@command -v pnpm >/dev/null || npm install -g --no-audit --no-fund --silent pnpm@$(PNPM_VERSION)

SETUP := venv link node-deps

# ruff first (seconds), then two lanes side by side: the host tests, one at a time (they share ports on the host
# network, and spend most of their time waiting on the host; `molecule test -s bootstrap` is one of them), and the
# checks: the two static checkers side by side, then the unit and integration tests on two workers (each with its
# own moto server).
test: $(SETUP)
	$(MAKE) --no-print-directory ruff
	$(MAKE) --no-print-directory --output-sync=target -j3 hosts checks

checks: lint sanity
	$(PY) -m pytest -n 2 tests/unit tests/integration

unit: $(SETUP)
	$(PY) -m pytest tests/unit

integration: $(SETUP)
	$(PY) -m pytest -n 2 tests/integration

# Systemd test hosts under podman (molecule): builds the test host image first when it is missing.
hosts: $(SETUP)
	$(PY) -m pytest tests/hosts

image: deps
	CONTAINERS_CONF=$(CURDIR)/molecule/shared/containers.conf molecule/shared/build-image.sh

ruff: venv
	$(BIN)/ruff check plugins tests bench roles

lint: $(SETUP)
	$(BIN)/ansible-lint

# ansible-test needs the collection under ansible_collections/<namespace>/<name>, with its
# dependencies beside it; it gets a copy of the files git knows about.
sanity: $(SETUP)
	@mkdir -p ~/.ansible/test/cache
	@cp tests/sanity/get_pip_stand_in.py ~/.ansible/test/cache/get_pip_24_2.py
	@rm -rf $(SANITY_ROOT)/flora && mkdir -p $(SANITY_ROOT)/flora/deploy $(SANITY_ROOT)/amazon
	@git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ $(SANITY_ROOT)/flora/deploy/
	@ln -sfn "$$($(PY) -c 'import ansible_collections.amazon.aws as m; print(list(m.__path__)[0])')" $(SANITY_ROOT)/amazon/aws
	@cd $(SANITY_ROOT)/flora/deploy && git init -q && git add -A
	cd $(SANITY_ROOT)/flora/deploy && $(CURDIR)/$(BIN)/ansible-test sanity --python 3.11 --local --color no

# One molecule scenario on its own, with the services it needs started around it (tests/support/scenario.py).
SCENARIO ?= bootstrap
ARGS ?= test
molecule: $(SETUP)
	$(PY) -m tests.support.scenario $(SCENARIO) $(ARGS)

demo: $(SETUP)
	./tests/demo/run.sh

bench: $(SETUP)
	$(PY) -m bench

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build/

# The execution environment (execution-environment.yml): this revision's collection, then the image.
EE_IMAGE := localhost/flora-deploy-ee
ee: venv
	@rm -rf build/ee && mkdir -p build/ee
	$(BIN)/ansible-galaxy collection build --force --output-path build/ee/
	mv build/ee/flora-deploy-*.tar.gz build/ee/flora-deploy.tar.gz
	$(BIN)/ansible-builder build -f execution-environment.yml -t $(EE_IMAGE) --container-runtime podman -v 1

clean:
	rm -rf build .collections .cache tests/output
