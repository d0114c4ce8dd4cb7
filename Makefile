# sherlocked: `make help` lists the targets.
PYTHON ?= python3
ARGS ?=

.PHONY: help install demo train tensorboard test lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: .installed ## install sherlocked and its tools into the active Python (editable)
.installed: pyproject.toml
	$(PYTHON) -m pip install -e '.[dev]'
	@touch $@

demo: install ## offline demo: train the study's MLP on the embedded 5,000 MNIST digits
	$(PYTHON) -m sherlocked.train dataset=mnist_5k $(ARGS)

train: install ## one run with the study's settings; pass overrides as ARGS="act2=sigmoid seed=3"
	$(PYTHON) -m sherlocked.train $(ARGS)

tensorboard: install ## TensorBoard over every run and sweep under outputs/
	$(PYTHON) -m tensorboard.main --logdir outputs

test: install ## the test suite (CPU, tiny generated data, no network)
	$(PYTHON) -m pytest -q

lint: install ## ruff check and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

clean: ## remove generated outputs and caches (not the downloaded data)
	rm -rf outputs/runs outputs/sweeps .pytest_cache .ruff_cache .installed
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
