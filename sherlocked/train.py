"""Train the study's MLPs: one run, or a Hydra sweep of them. Hydra's entry point, and only that.

    python -m sherlocked.train dataset=mnist_5k
    python -m sherlocked.train act1=relu act2=sigmoid act3=relu dataset=fashion_mnist trainer.max_epochs=2
    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1
    python -m sherlocked.train experiment=cifar10_4layer act4=tanh
    python -m sherlocked.train --plan act1=relu,tanh,sigmoid,selu 'seed=range(9)'   # the sweep's plan and cost

The work is in sherlocked.training.engine (a sweep's: sherlocked.sweep); nothing imports this module.
"""

import sys

import hydra
from omegaconf import DictConfig

from sherlocked import config_errors
from sherlocked.config import CONFIG_DIR
from sherlocked.job import population_task
from sherlocked.results import Result


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@population_task
def main(cfg: DictConfig) -> Result:
    # Torch and Lightning (seconds) only once the checks passed and a job trains here: a typo, --help and --plan
    # answer without them.
    from sherlocked.training.engine import train_job

    return train_job(cfg)


def plan_flag(argv: list[str]) -> list[str]:
    """--plan: the sweep's plan and what it will cost, then exit (the population launcher's hydra.launcher.plan)."""
    if "--plan" not in argv:
        return argv
    argv = [arg for arg in argv if arg != "--plan"]
    multirun = [] if {"-m", "--multirun"} & set(argv) else ["-m"]
    launcher = [] if any(arg.startswith("hydra/launcher=") for arg in argv) else ["hydra/launcher=population"]
    return [argv[0], *multirun, *argv[1:], *launcher, "hydra.launcher.plan=true"]  # options before overrides


if __name__ == "__main__":
    sys.argv = plan_flag(sys.argv)
    try:
        with config_errors.reported():
            main()
    except KeyboardInterrupt:  # results are written whole or not at all (the population launcher says more)
        print("sherlocked: interrupted; run the same command again to train what has no result", file=sys.stderr)
        sys.exit(130)
