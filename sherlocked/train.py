"""Train the study's MLPs: one run, or a Hydra sweep of them. Hydra's entry point, and only that.

    python -m sherlocked.train dataset=mnist_5k
    python -m sherlocked.train act1=relu act2=sigmoid act3=relu dataset=fashion_mnist trainer.max_epochs=2
    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1
    python -m sherlocked.train experiment=cifar10_4layer act4=tanh
    python -m sherlocked.train --plan act1=relu,tanh,sigmoid,selu 'seed=range(9)'   # the sweep's plan and cost

The work is in sherlocked.training.engine (a sweep's: sherlocked.sweep); nothing imports this module.
"""

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sherlocked.hydra_side import errors
from sherlocked.records import layout
from sherlocked.records.job import population_task
from sherlocked.records.results import Result
from sherlocked.runtime import signals
from sherlocked.spec.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@population_task
def main(cfg: DictConfig) -> Result:
    try:
        # Torch and Lightning (seconds) only once the checks passed and a job trains here: a typo, --help and --plan
        # answer without them.
        with signals.interrupt_held():
            from sherlocked.training.engine import train_job

        return train_job(cfg)
    except KeyboardInterrupt:
        forget_an_empty_run(Path(HydraConfig.get().runtime.output_dir))
        raise


def forget_an_empty_run(run_dir: Path) -> None:
    """After Ctrl-C, a run's dir that holds nothing of the run (Hydra's files only: it was stopped before it
    trained) goes, instead of staying behind as an empty outputs/runs/<date>/<time>/."""
    if layout.only_hydras(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def plan_flag(argv: list[str]) -> list[str]:
    """--plan: the sweep's plan and what it will cost, then exit (the population launcher's hydra.launcher.plan)."""
    if "--plan" not in argv:
        return argv
    argv = [arg for arg in argv if arg != "--plan"]
    multirun = [] if {"-m", "--multirun"} & set(argv) else ["-m"]
    launcher = [] if any(arg.startswith("hydra/launcher=") for arg in argv) else ["hydra/launcher=population"]
    return [argv[0], *multirun, *argv[1:], *launcher, "hydra.launcher.plan=true"]  # options before overrides


if __name__ == "__main__":
    if mistyped := errors.unknown_option(sys.argv[1:], ours=["--plan"]):
        print(f"sherlocked: {mistyped}", file=sys.stderr)
        sys.exit(2)
    sys.argv = plan_flag(sys.argv)
    try:
        with errors.reported():
            main()
    except KeyboardInterrupt:  # results are written whole or not at all (the population launcher says more)
        print("sherlocked: interrupted; run the same command again to train what has no result", file=sys.stderr)
        sys.exit(130)
