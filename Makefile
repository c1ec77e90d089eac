# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Both create .venv, install torch (CPU wheel here, CUDA wheel on GPU hosts) and the
# project with its model and test extras, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= matte-demo

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[models,dev]"
	# timm (EdgeTAM's backbone) without its torchvision dependency: the EdgeTAM test runs
	# it under a torchvision import stub (tests/shims); see docs/models.md.
	$(PY) -m pip install -q -c constraints.txt --no-deps "timm>=1.0,<2"
	touch $@

demo: setup
	$(VENV)/bin/matte demo --out $(DEMO)

# The farm tests (tests/test_farm.py) need Postgres and Redis: started here on test-only
# ports (installing the Debian packages if missing), stopped afterwards. If they cannot
# start, those tests skip and say why.
FARM_TEST_ENV := MATTE_FARM_DIR=/tmp/matte-farm-test MATTE_PG_PORT=55433 MATTE_REDIS_PORT=56380

test: setup
	$(FARM_TEST_ENV) deploy/services.sh db || echo "Postgres/Redis did not start: the farm tests will skip"
	$(FARM_TEST_ENV) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q -n 2 --dist loadgroup --durations=10; \
	  status=$$?; $(FARM_TEST_ENV) deploy/services.sh stop-db; exit $$status

bench: setup
	$(PY) benchmarks/demo_timing.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
