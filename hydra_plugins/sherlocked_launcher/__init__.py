"""sherlocked's Hydra plugins: hydra/launcher=population and hydra/sweeper=sherlocked, thin over sherlocked.sweep.

Hydra imports every module here at the start of every run (and executes its core plugins' modules
again), so these import only the torch-free base at module level (sherlocked.spec.config,
records.layout, hydra_side.usage and hydra_side.adapter) and sherlocked.sweep where a sweep is
launched. Keep this folder a plain package of hydra_plugins, a namespace: a
hydra_plugins/__init__.py would hide every other package's plugins.
"""
