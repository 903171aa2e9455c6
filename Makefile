# fracture_lit — `make train` and `make test` set the environment up when it is missing
# or older than pyproject.toml, so these two commands are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where this machine keeps local wheels of the pinned torch build (used when present).
FIND_LINKS := $(wildcard /opt/pypi-more/files)
UV_FLAGS := --python $(PY) --compile-bytecode $(if $(FIND_LINKS),--find-links $(FIND_LINKS))
# Without bytecode every `import lightning` costs ~20 s instead of ~7 s.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install train test test-all lint format bench browser slurm clean

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install $(UV_FLAGS) -e ".[dev]" || $(PY) -m pip install -e ".[dev]"
	$(PY) -m compileall -q fracture_lit tests > /dev/null || true
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install fracture_lit with its dev tools

train: $(STAMP) ## Run the main job: python -m fracture_lit.train (ARGS="..." for overrides)
	$(PY) -m fracture_lit.train $(ARGS)

test: $(STAMP) ## Run the tests (without the slow ones)
	$(PY) -m pytest $(ARGS)

test-all: $(STAMP) ## Run every test, slow ones included
	$(PY) -m pytest -m "" $(ARGS)

bench: $(STAMP) ## Benchmarks vs plain baselines -> bench_results/*.json + tables (see README)
	$(PY) benchmarks/bench_train.py --out bench_results/train.json
	$(PY) benchmarks/bench_loader.py --out bench_results/loader.json
	$(PY) benchmarks/bench_sweep.py --out bench_results/sweep.json
	$(PY) benchmarks/bench_search.py --out bench_results/search.json
	$(PY) benchmarks/bench_predict.py --out bench_results/predict.json
	$(PY) benchmarks/bench_main.py --out bench_results/main.json
	$(PY) benchmarks/bench_precision.py --out bench_results/precision.json

bench-quick: $(STAMP) ## The headline figures only: resnet18 train step on FracAtlas, loader, predict
	$(PY) benchmarks/bench_train.py --quick --out bench_results/train.json
	$(PY) benchmarks/bench_loader.py --out bench_results/loader.json
	$(PY) benchmarks/bench_predict.py --repeats 1 --out bench_results/predict.json

bench-gpu: $(STAMP) ## GPU benchmarks (needs CUDA) -> bench_results/gpu.json
	PY=$(PY) bash benchmarks/gpu.sh

browser: $(STAMP) ## Debian's chromium (apt-get, sudo when not root) + Playwright for the browser tests
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium already installed: /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			|| { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
	elif command -v sudo > /dev/null; then \
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			|| { sudo apt-get update -qq; sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
	else \
		echo "make browser: /usr/bin/chromium is missing and this is neither root nor a user" \
			"with sudo; install Debian's chromium (apt-get install -y chromium) as root." \
			"Without it tests/test_html_report.py and tests/test_serve.py skip their browser tests." >&2; \
		exit 1; \
	fi
	@test -x /usr/bin/chromium || { echo "make browser: apt-get did not provide /usr/bin/chromium" >&2; exit 1; }
	@# Playwright (a dev dependency) drives that chromium; it never downloads a browser.
	@$(PY) -c "import playwright.sync_api" \
		|| { echo "make browser: playwright is missing from $(VENV); run make install" >&2; exit 1; }

slurm: ## Two-node SLURM cluster on this machine for the `slurm` tests (root or sudo; .ci/slurm_up.sh)
	bash .ci/slurm_up.sh

lint: $(STAMP) ## ruff check + format check + the declared layers (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check fracture_lit hydra_plugins tests benchmarks
	$(VENV)/bin/ruff format --check fracture_lit hydra_plugins tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix fracture_lit hydra_plugins tests benchmarks
	$(VENV)/bin/ruff format fracture_lit hydra_plugins tests benchmarks

clean: ## Remove run outputs and caches (keeps .venv and data/)
	rm -rf outputs multirun_outputs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
