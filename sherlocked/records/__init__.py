"""What a job and a sweep leave, and where, torch-free: job (the one record of a job), layout (every path a sweep
writes), results (result.json), outcomes (the one recorder of a job's outcome), table (the sweep's results table),
population_progress (a population's progress file), dashboard (TensorBoard's HParams files), atomic (the writes
every file goes through), yaml_text (OmegaConf's YAML text).

Imports sherlocked.spec and itself.
"""
