# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The stamp is newer than pyproject.toml once the install is complete, so a second
# `make run` does not reinstall.
STAMP  := $(VENV)/.adl-installed

.PHONY: run test install lint bench gpu-check gpu-wheels gpu-dry-run clean ui

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH, or make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/adl train dqn --config configs/dqn/cartpole.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two phases on two cores: the tests that start no Ray run two at a time (pytest-xdist, one process per
# core); those that start Ray (marked `ray`, the multi-host cluster among them) one at a time, as they
# size their clusters for the whole machine. `pytest` alone runs everything in one process.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -m "not ray" -n 2 --dist loadscope --durations=15
	$(BIN)/python -m pytest -q -m ray --durations=30

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench,sweeps]'
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_dqn_cartpole.py --seeds 5 --cap-s 150 --tools adl,adl-cluster,rllib,sb3

# On a machine with a CUDA GPU (and ~16 cores for the collector scaling): the CUDA tests, then the GPU
# benchmarks of issues #12 and #13, each writing its JSON to benchmarks/results/. About 40 minutes.
gpu-check: $(STAMP)
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA GPU; torch sees none')"
	$(BIN)/python -m pytest -q -m cuda
	$(BIN)/python benchmarks/bench_gpu_trials.py
	$(BIN)/python benchmarks/bench_gpu_packing.py
	$(BIN)/python benchmarks/bench_dqn_gpu.py --parts learner devices cartpole pong --pong-budget-s 480
	$(BIN)/python benchmarks/bench_apex_collectors.py --inference local gpu

# Wheels for a GPU machine that has torch but not Ray, gymnasium or ale-py, for its Python (GPU_PYTHON,
# default 3.12), into .whl/ (git-ignored; ~45 MB): carry .whl/ with the checkout and run
# benchmarks/gpu_machine/checks.sh there (docs/gpu_checks.md). Needs PyPI.
GPU_PYTHON ?= 3.12
gpu-wheels: $(STAMP)
	benchmarks/gpu_machine/wheels.sh $(GPU_PYTHON) .whl

# Every part of benchmarks/gpu_machine/checks.sh on the CPU, tiny (about a minute; also run by `make test`).
gpu-dry-run: $(STAMP)
	PYTHON=$(BIN)/python benchmarks/gpu_machine/checks.sh --dry-run env tests learner trials packing collectors pong pipelines

ui: $(STAMP)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
