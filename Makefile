# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both create .venv, install torch (CPU wheel here, CUDA wheel on GPU hosts) and the
# project with its model and test extras, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= matte-demo

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[models,dev]"
	touch $@

demo: setup
	$(VENV)/bin/matte demo --out $(DEMO)

test: setup
	$(PY) -m pytest -q -n 2 --durations=10

bench: setup
	$(PY) benchmarks/demo_timing.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
