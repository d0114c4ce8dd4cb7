# sherlocked: `make help` lists the targets.
# The Python make installs into and runs: $(VENV)'s once it exists; else python3, except where python3 refuses
# pip installs (PEP 668: Debian's and Ubuntu's own Python), for which make creates $(VENV) first.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
MANAGED := $(shell $(SYSTEM_PYTHON) -c "import os, sys, sysconfig; print(int(sys.prefix == sys.base_prefix and \
	os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))" 2>/dev/null)
PYTHON ?= $(if $(or $(wildcard $(VENV)/bin/python),$(filter 1,$(MANAGED))),$(VENV)/bin/python,$(SYSTEM_PYTHON))
# The same Python named from anywhere (the installed-check runs it from /): a path made absolute, a bare name as it is.
ABSOLUTE_PYTHON = $(if $(findstring /,$(PYTHON)),$(abspath $(PYTHON)),$(PYTHON))
ARGS ?=
# What make installs: the tools and every optional engine, so that make test runs every test CI runs (.ci/run).
EXTRAS = dev,ray,slurm,optuna,mlflow,wandb
STUDY ?=
GRID = act1=relu,tanh,sigmoid,selu act2=relu,tanh,sigmoid,selu act3=relu,tanh,sigmoid,selu
TRAIN = $(PYTHON) -m sherlocked.train
SWEEP = $(TRAIN) -m hydra/launcher=population
# Where outputs go, as conf/paths/default.yaml says (SHERLOCKED_OUTPUTS=DIR moves them): $(call OUTPUTS,sweeps).
OUTPUTS = $(shell $(PYTHON) -m sherlocked.records.layout $(1))

.PHONY: help venv install demo demo-cnn demo-residual train sweep sweep-bn sweep-cifar sweep-cnn fashion-mnist report bench bench-gpu bench-scale waits tensorboard test-tools test test-fast lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: ## a virtual environment in .venv, used by every target from then on (made for you where python3 refuses pip)
	$(SYSTEM_PYTHON) -m venv $(VENV)

# Installs when pyproject.toml changed or the Python lacks sherlocked (checked from /, not from here).
install: ## install sherlocked, its tools and its optional engines (Ray, submitit, Optuna) into the active Python, or .venv (editable)
	@if [ "$(PYTHON)" = "$(VENV)/bin/python" ] && [ ! -x "$(PYTHON)" ]; then \
		echo "$(SYSTEM_PYTHON) refuses pip installs (PEP 668): installing into a virtual environment, $(VENV)"; \
		$(SYSTEM_PYTHON) -m venv $(VENV); fi
	@if [ .installed -nt pyproject.toml ] && (cd / && $(ABSOLUTE_PYTHON) -c 'import sherlocked') 2>/dev/null; then :; \
	else $(PYTHON) -m pip install -e '.[$(EXTRAS)]' && touch .installed; fi

demo: install ## offline reduced study: 64 triples x 5 seeds x 5 epochs on 5,000 embedded MNIST digits, then the report
	$(SWEEP) study=demo dataset=mnist_5k $(GRID) 'seed=range(5)' trainer.max_epochs=5 $(ARGS)
	$(PYTHON) -m sherlocked.report $(call OUTPUTS,sweeps)/demo

# The residual question's grid: act2..act4 of 784-256-256-256-10 (conf/experiment/mnist_residual.yaml), skips off and on.
RESIDUAL_GRID = act2=relu,tanh,sigmoid,selu act3=relu,tanh,sigmoid,selu act4=relu,tanh,sigmoid,selu model.residual=false,true

demo-cnn: install ## offline CNN study: 64 triples on a LeNet-like CNN's 3 layers x 3 seeds x 5 epochs, mnist_5k
	$(SWEEP) study=demo_cnn model=cnn dataset=mnist_5k $(GRID) 'seed=range(3)' trainer.max_epochs=5 $(ARGS)
	$(PYTHON) -m sherlocked.report $(call OUTPUTS,sweeps)/demo_cnn
	@grep -m1 '^\*\*Answer' $(call OUTPUTS,sweeps)/demo_cnn/index.md

demo-residual: install ## offline: do skips remove the failure? act2..act4 x residual off/on x 3 seeds x 5 epochs
	$(SWEEP) study=demo_residual experiment=mnist_residual dataset=mnist_5k $(RESIDUAL_GRID) 'seed=range(3)' trainer.max_epochs=5 $(ARGS)
	$(PYTHON) -m sherlocked.report $(call OUTPUTS,sweeps)/demo_residual
	@sed -n '/^\*\*Answer/,/^Details/{/^Details/!p}' $(call OUTPUTS,sweeps)/demo_residual/index.md

train: install ## one run with the study's settings; pass overrides as ARGS="act2=sigmoid seed=3"
	$(TRAIN) $(ARGS)

sweep: install ## the original MNIST study: 64 triples x 9 seeds (576 jobs); rerun to resume
	$(SWEEP) study=mnist $(GRID) 'seed=range(9)' $(ARGS)

sweep-bn: install ## the study's grid with batch norm on every layer and on the last layer alone
	$(SWEEP) study=mnist_bn $(GRID) model.batch_norm=all,last 'seed=range(9)' $(ARGS)

sweep-cifar: install ## the CIFAR-10 4-layer grid: 256 activation quadruples x 3 seeds
	$(SWEEP) study=cifar10 experiment=cifar10_4layer $(GRID) act4=relu,tanh,sigmoid,selu 'seed=range(3)' $(ARGS)

sweep-cnn: install fashion-mnist ## the study's grid on the CNN's 3 layers: 64 triples x 9 seeds (576 jobs), Fashion-MNIST
	$(SWEEP) study=cnn_fashion model=cnn dataset=fashion_mnist $(GRID) 'seed=range(9)' $(ARGS)

# Fashion-MNIST offline: Debian's dataset-fashion-mnist puts its four .gz files where conf/dataset/fashion_mnist.yaml
# looks first (fallback_dirs). make installs it where it may (as root, with apt); elsewhere torchvision downloads it.
FASHION_DIR = /usr/share/datasets/fashion-mnist
fashion-mnist: ## Debian's dataset-fashion-mnist: Fashion-MNIST offline, for make sweep-cnn (root with apt only)
	@if [ ! -d $(FASHION_DIR) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing dataset-fashion-mnist (Debian package) into $(FASHION_DIR)"; \
		apt-get install -y -qq --no-install-recommends dataset-fashion-mnist 2>/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			dataset-fashion-mnist; }; \
	fi

report: install ## table, plots and statistics of a sweep: make report STUDY=mnist (no STUDY: the sweeps there are)
	$(PYTHON) -m sherlocked.report $(if $(STUDY),$(call OUTPUTS,sweeps)/$(STUDY))

bench: install ## speed on this machine: plain loop vs solo runs vs populations (64 triples, mnist_5k), then real multiruns: overhead per job, end to end
	$(PYTHON) -m sherlocked.bench $(ARGS)

bench-gpu: install ## the GPU benchmark: the whole 576-job study shape, 10 epochs, on Fashion-MNIST's 60,000 images
	$(PYTHON) -m sherlocked.bench --device cuda --dataset fashion_mnist --members 576 --epochs 10 --baseline-members 4 --baseline-epochs 1 --compile default,reduce-overhead --compile-epochs 2 $(ARGS)

bench-scale: install ## the report of a study of 100,000 runs (a synthetic results table), timed whole
	$(PYTHON) -m sherlocked.bench --scale 100000 $(ARGS)

waits: install ## what a newcomer waits for, timed whole: a typo's line, --help, --plan, a run, make demo's sweep and report (the README's figures)
	$(PYTHON) -m sherlocked.bench.waits --demo $(ARGS)

tensorboard: install ## TensorBoard over every run and sweep in the outputs folder: runs named by study, one HParams table
	$(PYTHON) -m sherlocked.board $(ARGS)

# What tests need from Debian, as command:package: the report page's test renders it with pandoc and Chromium
# (tests/test_page.py); the SLURM tests start a one-node SLURM (tests/slurm_cluster.py). make installs them where it
# may (as root, with apt); elsewhere those tests skip and say so.
TEST_TOOLS = pandoc:pandoc chromium:chromium slurmctld:slurm-wlm munged:munge
test-tools: ## Debian's pandoc, Chromium, SLURM and munge, for the page's and the SLURM tests (root with apt only)
	@missing="$$(for tool in $(TEST_TOOLS); do command -v $${tool%%:*} >/dev/null || \
		[ -x /usr/sbin/$${tool%%:*} ] || echo $${tool#*:}; done)"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing" $$missing "(Debian packages) for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The tests run on xdist's workers, more than the cores: most slow tests wait (on the processes, SLURM and Ray they
# start) more than they compute. Tests that start a SLURM or a Ray share a worker (xdist_group), one cluster at a time.
TEST_WORKERS ?= 4
test: install test-tools ## the whole test suite, every test CI runs (CPU, tiny generated data, no network), in parallel
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

test-fast: install ## the unit tier, in under a minute: every test not marked slow (no sweep process, cluster or wait)
	$(PYTHON) -m pytest -q -m "not slow" -n auto $(ARGS)

lint: install ## ruff check and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

clean: ## remove generated outputs and caches (not the downloaded data)
	rm -rf $(call OUTPUTS,runs sweeps bench) .pytest_cache .ruff_cache .installed
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
