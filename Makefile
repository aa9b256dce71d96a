# Two-command quick start: `make book` then `make test`.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PY := $(VENV)/bin/python
# nbgrader runs `alembic` from PATH, so the venv's bin must come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)
export MPLBACKEND := Agg
SUBMISSIONS ?=
# Empty: _grading for SUBMISSIONS, _demo_grading for the demo class (never the course's gradebook).
OUT ?=
# Space-separated assignment ids / student ids to restrict `make release` and `make grade` to.
ASSIGNMENT ?=
STUDENT ?=
PORT ?= 8000
WORKERS ?= 2

.PHONY: book test release grade serve clean system

# Debian packages (bubblewrap, Chromium, npm, ...) installed when missing, with a line saying which.
system:
	@bash tools/install-system-packages

# (Re)create the venv only when requirements.txt changes.
$(STAMP): requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Front-end assets from the npm registry (package-lock.json pins them).
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# First the chapters whose code changed are executed in parallel into the
# jupyter-cache (book/execute.py); then the strict build: any warning or
# failing cell fails it, and --all with a removed doctree cache gives a fresh
# Sphinx state, while executed outputs come from _build/.jupyter_cache.
book: system $(STAMP) $(NODE_STAMP)
	$(PY) book/execute.py
	rm -rf _build/.doctrees
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going

test: system $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest

release: $(STAMP)
	$(PY) -m autograder release $(ASSIGNMENT)

grade: system $(STAMP)
	$(PY) -m autograder grade $(SUBMISSIONS) $(if $(OUT),--out $(OUT)) --workers $(WORKERS) \
		$(foreach a,$(ASSIGNMENT),--assignment $(a)) $(foreach s,$(STUDENT),--student $(s))

serve: book
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# Never the gradebook, collected submissions or grades in _grading/: only what is rebuilt.
clean:
	rm -rf _build .pytest_cache node_modules _demo_grading _grading/autograded _grading/work
