"""sherlocked: how activation functions interact across the layers of a neural network.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh act2=sigmoid,relu 'seed=range(9)'
    python -m sherlocked.report outputs/sweeps/default

The layers, each importing only from those below it (tests/test_imports.py holds them to it):
- the entry points: train.py (Hydra's) and bench/ (the benchmark); nothing imports them;
- sweep/: plan a sweep, write its job dirs, lock, run populations on a backend, show progress,
  check a sweep's values; it imports training/ only inside the functions that train a
  population (in whichever process trains it), so none of its modules imports torch;
- training/ (torch): the engine, the Lightning module, the population of stacked MLPs, the
  optimisers, the data as tensors, the diagnostics; it never imports sweep/;
- report/: a sweep's results turned into the study's page; no torch, no training, no sweep;
- the base, torch-free, for all of them: config (what each key means, declared once), checks
  (what a config must be), activations and datasets (names, sizes, files), job (the one record
  of a job), layout (every path a sweep writes), results (result.json, atomic writes),
  dashboard (the sweep's HParams experiment), hydra_adapter (Hydra's internals, behind one
  module), phases (where a sweep's time goes), usage (--help).
"""
