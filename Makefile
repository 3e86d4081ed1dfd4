# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench validity lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	bash scripts/demo.sh

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/ensemble_training.py
	$(PY) benchmarks/unlearning.py
	$(PY) benchmarks/audit_run.py

# Error rates of the audit on real models (about 1.5 hours on 2 cores; draws already in the file are skipped).
validity: $(VENV)/.installed
	$(PY) benchmarks/validity.py --out benchmarks/results/validity.jsonl

lint: $(VENV)/.installed
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check audit_cli attacks tests benchmarks sample_models scripts examples

clean:
	rm -rf $(VENV) build *.egg-info
