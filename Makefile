# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GL_PKGS := libegl1 libopengl0 libgl1-mesa-dri libgl1 libglib2.0-0
export MUJOCO_GL ?= egl
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1
DEMO_OUT ?= runs/demo
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test test-all gl venv bench default-critic clean

$(STAMP): requirements.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel (a bare `torch` requirement would pull a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@touch $(STAMP)

venv: $(STAMP)

# The Debian GL libraries MuJoCo needs to render on a CPU (EGL + Mesa llvmpipe).
gl:
	@missing=""; for p in $(GL_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing GL libraries:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "MuJoCo rendering needs:$$missing"; \
	    echo "run: sudo apt-get install -y --no-install-recommends$$missing"; exit 1; \
	  fi; \
	fi

demo: gl $(STAMP)
	$(BIN)/python scripts/rollout.py --env Lift --robot Panda --policy scripted --episodes 1 --seed 0 --overwrite --out $(DEMO_OUT)/nominal
	$(BIN)/python scripts/rollout.py --env Lift --robot Panda --policy scripted --inject-failure drop --episodes 1 --seed 0 --overwrite --out $(DEMO_OUT)/drop
	@echo "demo videos: $(DEMO_OUT)/nominal/episode_000.mp4 (lift) and $(DEMO_OUT)/drop/episode_000.mp4 (injected drop)"

test: gl $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: gl $(STAMP)
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

bench: gl $(STAMP)
	$(BIN)/python benchmarks/throughput.py

# Rebuild the default compact critic and its target report (scripts/build_default_critic.sh; QUICK=1 for a toy run)
default-critic: gl $(STAMP)
	PY=$(BIN)/python scripts/build_default_critic.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
