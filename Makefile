# make demo          the whole study on the tiny default (config/config.yaml), CPU, minutes
# make test          the test suite
# make dryrun-paper  the paper's study (config/paper.yaml) as a Slurm dry-run: lists every job
# make clean         remove results/ and Snakemake's metadata
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CORES ?= 2
STAMP := $(VENV)/.ilr-installed

.PHONY: demo test dryrun-paper clean venv

venv: $(STAMP)

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	source $(VENV)/bin/activate && snakemake --cores $(CORES) all

test: $(STAMP)
	source $(VENV)/bin/activate && pytest -q

dryrun-paper: $(STAMP)
	source $(VENV)/bin/activate && snakemake --profile slurm --configfile config/paper.yaml -n all

clean:
	rm -rf results .snakemake
