# Two commands set up everything on a machine that has Python >= 3.10:
#   make demo   create .venv, install drcollab, run the main job on synthetic data
#   make test   create .venv, install drcollab with dev extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.drcollab-installed

.PHONY: demo test test-slow lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/drcollab demo --out runs/demo

test: $(STAMP)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium unavailable: browser test will skip"
	$(PY) -m pytest -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache
