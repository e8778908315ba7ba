# make test  — create .venv from pyproject.toml if missing, run the whole test suite
# make book  — execute every chapter at the cpu profile with papermill, build _build/html
# make bench — print the benchmark ratios (benchmarks/)
# make bench-ray — warming a chapter's cpu trainings: two Ray workers against one process
# make gpu-check — on a GPU: every paper dry run, timings, one ResNet-18 epoch (benchmarks/gpu.json)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SHARED := ../shared/data
export UNLEARNKIT_DATA ?= $(CURDIR)/data
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# slowed a contended CIFAR training step 5-7x (small_cnn, batch 100: 1.39 s vs 0.19-0.25 s).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: test book bench bench-ray gpu-check data env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The offline copies beside the checkout, if present; otherwise the loaders download when online.
data:
	@if [ -x $(SHARED)/unpack.sh ]; then bash $(SHARED)/unpack.sh $(UNLEARNKIT_DATA); \
	else echo "no $(SHARED): loaders will read $(UNLEARNKIT_DATA) or download when online"; fi

# Two pytest workers (one per core): the chapters' smoke runs and everything reading them stay
# on one worker (tests/conftest.py groups them), every other test file goes whole to either.
TEST_WORKERS ?= 2
test: env data
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

book: env data
	$(BIN)/python -m unlearnkit build --profile cpu

bench: env data
	$(BIN)/python benchmarks/run.py

bench-ray: env data
	$(BIN)/python benchmarks/ray_warm.py

gpu-check: env data
	$(BIN)/python benchmarks/gpu_check.py --device cuda

clean:
	rm -rf _build
