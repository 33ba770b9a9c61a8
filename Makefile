# R1 Distill Lab – the README's commands. Everything runs in ./.venv, created on first use.
#   make run   [PROFILE=tiny] [SEED=0]   execute every notebook headless, print the results table
#   make class                          classroom replay: save every long cell's run once, time the replay
#   make solutions                      execute the exercises' solution notebooks (after make run)
#   make zh                             rebuild the Chinese notebooks (notebooks/zh/) from the English ones + catalogues
#   make test                           unit tests + nbval over every notebook (what CI runs)
#   make study [SEEDS="0 1 2"]          the whole series once per seed, mean ± sd table (into README.md)
#   make bench                          benchmarks (ratios measured in one run)
#   make gpu-check [TINY=1]             colab stages vs a T4's 15 GB: measured on CUDA, traced on a CPU
#   make colab-dryrun                   the colab profile's code path, offline on the CPU, with local stand-ins
#   make lab                            JupyterLab on 127.0.0.1
#   make browser                        Chromium and a Chinese font for the browser test (apt; needs root), a separate step
PROFILE ?= tiny
SEED ?= 0
SEEDS ?= 0 1 2
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offline profiles only: colab downloads its checkpoints (utils.config sets it per profile too).
ifneq ($(PROFILE),colab)
export HF_HUB_OFFLINE ?= 1
endif
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export PYTHONWARNINGS := ignore

.PHONY: setup venv run class solutions zh study test unit bench lab browser badges gpu-check colab-dryrun clean

setup: venv
	@$(MAKE) --no-print-directory $(STAMP)

# (Re)creates the venv when it has no working pip (e.g. a failed `python3 -m venv` on Debian without
# python3-venv), after checking $(PYTHON) against requires-python.
venv:
	@$(PY) -m pip --version >/dev/null 2>&1 || { \
	  test -n "$(PYTHON)" || { echo "No python3 found: install Python 3.11, 3.12 or 3.13." >&2; exit 1; }; \
	  $(PYTHON) scripts/check_python.py || exit 1; \
	  echo "Creating $(VENV) with $(PYTHON)"; \
	  { $(PYTHON) -m venv --clear $(VENV) && $(PY) -m pip --version >/dev/null 2>&1; } || \
	  { $(PYTHON) scripts/check_python.py --venv-hint; exit 1; }; }

$(STAMP): pyproject.toml
	@$(PY) scripts/check_python.py || { echo "$(VENV) has the wrong Python: remove it and run make again." >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the CPU wheel on Linux without nvidia-smi (pip itself does not detect GPUs).
	$(PY) scripts/install_torch.py
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: setup
	R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED)

# Classroom replay: the saved run of every long cell (a real run first if there is none), then each notebook in
# replay mode, timed; prints the pack's size. In class: R1LAB_REPLAY=1 make lab. See utils/replay.py.
class: setup
	R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED) --class

# The exercises' worked solutions, executed in place (after `make run`: they read its artifacts).
solutions: setup
	R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED) --solutions

# The Chinese notebooks: the executed English notebooks with each markdown cell from notebooks/zh/i18n/
# (a no-op on a clean checkout; `make run` and `make solutions` do it too). See utils/i18n.py.
zh: setup
	$(PY) -m utils.i18n build

# The whole series once per seed, each seed in artifacts/study/seed<N>, then the study's controls
# (utils/controls.py, 1,000-problem splits); summary in artifacts/study/summary.md, published to README.md,
# docs/study/, docs/teaching.md and (seed 0's executed notebooks) notebooks/.
study: setup
	$(PY) -m utils.study --seeds $(SEEDS) --profile $(PROFILE)

# Headless Chromium and a Chinese font (the app's 中文 screenshot) for the browser test of notebook 05
# (Debian's packages; needs root). Not part of `make test`: without them that test is skipped, or fails
# when CI=true.
BROWSERS := chromium chromium-browser google-chrome
CJK_FONT := fonts-noto-cjk
browser:
	@found=""; for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && { found=$$(command -v $$b); break; }; done; \
	missing=""; test -n "$$found" || missing=" chromium"; \
	test -n "$$(fc-list :lang=zh 2>/dev/null)" || missing="$$missing $(CJK_FONT)"; \
	if [ -z "$$missing" ]; then echo "browser: $$found, with a Chinese font"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null && echo "browser: installed$$missing"; } || \
	  { echo "apt-get install$$missing failed (Ubuntu: chromium-browser, or install google-chrome)." >&2; exit 1; }; \
	else \
	  echo "Missing:$$missing. Install as root: sudo apt-get install$$missing (Ubuntu: chromium-browser), then make test." >&2; exit 1; \
	fi

# The test run has its own artifacts root: it never reads or overwrites what `make run` made.
# Of the Chinese notebooks (the English code: tests/test_i18n.py) nbval runs 01 and 05, to
# prove they run from their own folder; running the others would repeat the English runs.
ZH_SKIP := --ignore=notebooks/zh/solutions --ignore-glob='*/zh/0[234]_*.ipynb'
test: setup
	R1LAB_ARTIFACTS=$(CURDIR)/artifacts/test-run R1LAB_PROFILE=$(PROFILE) R1LAB_SEED=$(SEED) $(PY) -m pytest -q tests notebooks $(ZH_SKIP) --nbval-lax --nbval-cell-timeout=1500

unit: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m utils.bench

# Listens on 127.0.0.1 only; Jupyter refuses to run as root without --allow-root.
lab: setup
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks$(if $(filter 0,$(shell id -u)), --allow-root)

# Rewrite the "Open in Colab" badges and clone URLs for your fork: make badges REPO=org/name
badges: setup
	$(PY) scripts/badges.py $(REPO)

# The colab profile's code path on this CPU, offline: local stand-ins instead of hub checkpoints and
# GSM8K, a few steps per stage (about 2 min). Executed notebooks go to artifacts/colab-dryrun/notebooks.
colab-dryrun: setup
	R1LAB_PROFILE=colab-dryrun $(PY) -m utils.runner --profile colab-dryrun --out artifacts/colab-dryrun/notebooks

# Will every colab stage fit a free Colab T4 (15 GB, fp16)? On a CUDA device: one real step per stage with
# full-size random-weight models, capped at 15 GB, measured peak vs plan vs trace and this device's
# tokens/s (a GPU under 15 GB is refused). On a CPU: the traced peaks against the plan (dry mode, ~2 min).
# make gpu-check TINY=1: the old check – the tiny series' notebooks on the GPU, with each one's time.
gpu-check: setup
ifdef TINY
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check TINY=1 needs a CUDA GPU')"
	R1LAB_ARTIFACTS=$(CURDIR)/artifacts-gpu $(PY) -m utils.runner --profile $(PROFILE) --seed $(SEED) --out artifacts-gpu/notebooks
else
	HF_HUB_OFFLINE=1 $(PY) scripts/gpu_check.py
endif

clean:
	rm -rf artifacts/$(PROFILE)
