# R1 Distill Lab – the README's commands. Everything runs in ./.venv, created on first use.
#   make run   [PROFILE=tiny] [SEED=0]   execute every notebook headless, print the results table
#   make test                           unit tests + nbval over every notebook (what CI runs)
#   make study [SEEDS="0 1 2"]          the whole series once per seed, mean ± sd table (into README.md)
#   make bench                          benchmarks (ratios measured in one run)
#   make colab-dryrun                   the colab profile's code path, offline on the CPU, with local stand-ins
#   make lab                            JupyterLab on 127.0.0.1
PROFILE ?= tiny
SEED ?= 0
SEEDS ?= 0 1 2
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export PYTHONWARNINGS := ignore

.PHONY: setup run study test unit bench lab browser badges gpu-check colab-dryrun clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch where no CUDA GPU is present (on a GPU machine pip picks the CUDA build).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: setup
	R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED)

# The whole series once per seed, each seed in artifacts/study/seed<N>; summary in artifacts/study/summary.md.
study: setup
	$(PY) -m utils.study --seeds $(SEEDS) --profile $(PROFILE)

# Headless Chromium for the browser test of notebook 05 (Debian packages; skipped if unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: the browser test will be skipped"; }

test: setup browser
	R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m pytest -q tests notebooks --nbval-lax --nbval-cell-timeout=1500

unit: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m utils.bench

lab: setup
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

# Rewrite the "Open in Colab" badges and clone URLs for your fork: make badges REPO=org/name
badges: setup
	$(PY) scripts/badges.py $(REPO)

# The colab profile's code path on this CPU, offline: local stand-ins instead of hub checkpoints and
# GSM8K, a few steps per stage (about 2 min). Executed notebooks go to artifacts/colab-dryrun/notebooks.
colab-dryrun: setup
	R1LAB_PROFILE=colab-dryrun $(PY) -m utils.runner --profile colab-dryrun --out artifacts/colab-dryrun/notebooks

# On a CUDA machine: run the default series on the GPU and report each notebook's time.
gpu-check: setup
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA GPU')"
	R1LAB_ARTIFACTS=$(CURDIR)/artifacts-gpu $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED) --out artifacts-gpu/notebooks

clean:
	rm -rf artifacts/$(PROFILE)
