"""Where sherlocked meets Hydra's command line, torch-free: adapter (Hydra's internals behind one module: a job's
config and .hydra/ files derived from its group's one composition, what Hydra's callbacks get back), errors (what
Hydra or OmegaConf raises, as one line), usage (--help).

Imports sherlocked.spec, sherlocked.records and itself; training/ imports none of it.
"""
