"""The sweep side: a sweep's jobs planned, written, locked, trained on a backend, watched and checked.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

plan.py (jobs -> finished or not -> populations -> backend, printable: Plan.describe), run.py
(carry a plan out: job dirs, locks, callbacks, Ctrl-C), devices.py (the device, workers, the
memory cap), backends.py (here, Ray, SLURM), locks.py, progress.py (the live line),
callback.py (the sweep's checks, progress and summary: Hydra's callback).
May import the base (sherlocked.spec.config, checks, job, layout, results, hydra_adapter, ...);
sherlocked.training only inside the functions that train a population, and torch only inside
those that ask this machine about its GPUs (devices.py), so no module here imports torch;
sherlocked.report only for the study's answer at a sweep's end (callback.py).
"""
