"""The sweep side: a sweep's jobs checked, planned, written, locked, trained on a backend, watched and ended.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

In the order a sweep meets them: preflight.py (every value, the launcher, the folder, the GPU and
the data checked before anything is written), plan.py (jobs -> finished or not -> populations ->
backend, printable: Plan.describe; estimate.py: what it will cost, --plan), run.py (carry a plan
out: the data fetched, job dirs, locks, Hydra's callbacks, Ctrl-C), devices.py (the device,
workers, the memory cap), backends.py (here, Ray, SLURM), locks.py, progress.py (the count, the
ETA, the live view), finish.py (the sweep's end: table, aggregates, the answer, the summary), and
callback.py (Hydra's hooks, wired to these).
May import the base (runtime, spec, records, hydra_side); sherlocked.training only inside the
functions that train a population, and torch only inside those that ask this machine about its
GPUs (devices.py), so no module here imports torch; sherlocked.report only for the study's answer
at a sweep's end (finish.py).
"""
