"""The training side: jobs in, one population of stacked MLPs trained by Lightning, one result.json per job out.

    python -m sherlocked.train act2=sigmoid act3=relu dataset=mnist_5k trainer.max_epochs=2

engine.py reads top to bottom (run, train, fit, build, collect); population.py holds the model,
module.py the LightningModule, optimizers.py the member-wise optimisers, data.py the tensors,
diagnostics.py the dead-unit and saturation measures, compiled.py torch.compile,
checkpoints.py and reporter.py what a population leaves while it trains, trackers/ each member's runs
(TensorBoard, CSV, MLflow, W&B, any Lightning logger);
a job's outcome is recorded by sherlocked.records.outcomes, as on every other path.
May import torch and runtime/, spec/ and records/; never sherlocked.sweep, sherlocked.report or
sherlocked.hydra_side (tests/test_imports.py).
"""
