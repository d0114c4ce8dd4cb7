"""Train the study's MLPs: one run, or a Hydra sweep of them. Hydra's entry point, and only that.

    python -m sherlocked.train dataset=mnist_5k
    python -m sherlocked.train act1=relu act2=sigmoid act3=relu dataset=fashion_mnist trainer.max_epochs=2
    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1
    python -m sherlocked.train experiment=cifar10_4layer act4=tanh

The work is in sherlocked.training.engine (a sweep's: sherlocked.sweep); nothing imports this module.
"""

import sys

import hydra
from omegaconf import DictConfig

from sherlocked.config import CONFIG_DIR
from sherlocked.results import Result
from sherlocked.training.engine import train_job


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> Result:
    return train_job(cfg)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # results are written whole or not at all (the population launcher says more)
        print("sherlocked: interrupted; run the same command again to train what has no result", file=sys.stderr)
        sys.exit(130)
