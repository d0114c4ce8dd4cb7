"""sherlocked: how activation functions interact across the layers of a neural network.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh act2=sigmoid,relu 'seed=range(9)'
    python -m sherlocked.report outputs/sweeps/default

Every module is in a folder that says what it is, and each folder imports only from those below it
(tests/test_imports.py holds them to it):
- the entry points, alone at the top: train.py (Hydra's: runs and sweeps), board.py (TensorBoard over every
  run), and the packages report/ (python -m sherlocked.report) and bench/ (python -m sherlocked.bench);
- sweep/: plan a sweep, check it before it starts, write its job dirs, lock, run populations on a backend,
  show progress, end it; Hydra's callback (callback.py) only wires Hydra's hooks to these; it imports
  training/ only inside the functions that train a population, so none of its modules imports torch;
- training/ (torch): the engine, the Lightning module, the population of stacked MLPs, the optimisers, the data as
  tensors, the diagnostics, trackers/ (each member's runs); never sweep/, report/ or hydra_side/;
- report/: a sweep's results turned into the study's page; no torch, no training, no sweep;
- the base, torch-free, in four folders, each on the ones before it:
  runtime/ (signals, phases, atomic: how the process stops, where its time goes, how it writes a file),
  spec/ (config, checks, activations, datasets: what a config means and must be),
  records/ (job, layout, results, outcomes, table, population_progress, dashboard, mlflow_store, yaml_text:
  what a job and a sweep leave, and where), hydra_side/ (adapter, errors, usage: where sherlocked meets Hydra).
"""
