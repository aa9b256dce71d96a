# Two-command quick start: `make book` then `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# nbgrader runs `alembic` from PATH, so the venv's bin must come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)
export MPLBACKEND := Agg
SUBMISSIONS ?=
OUT ?= _grading
PORT ?= 8000
WORKERS ?= 2

.PHONY: book test release grade serve clean

# (Re)create the venv only when requirements.txt changes.
$(STAMP): requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Strict: any warning or failing cell fails the build; --all and a removed
# doctree cache give a fresh Sphinx state, while executed outputs still come
# from the jupyter-cache in _build/.jupyter_cache.
book: $(STAMP)
	rm -rf _build/.doctrees
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going

test: $(STAMP)
	$(PY) -m pytest

release: $(STAMP)
	$(PY) -m autograder release

grade: $(STAMP)
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) --workers $(WORKERS)

serve: book
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build _grading .pytest_cache
