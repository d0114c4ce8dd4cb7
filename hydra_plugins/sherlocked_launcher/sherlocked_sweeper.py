"""Hydra sweeper `hydra/sweeper=sherlocked`, conf/train.yaml's default: Hydra's basic sweeper, except that
it does not compose every job up front for a launcher that checks every job itself before writing any.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh seed=0,1

The basic sweeper composes each job once to validate the batch (0.1-0.3 s a job here), and a
launcher composes it again; the population launcher composes one job per group and derives and
checks the rest (sherlocked.jobdirs), so the first composition would be most of a sweep's
overhead. With any other launcher this sweeper is the basic one.
"""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class SherlockedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.sherlocked_launcher.sherlocked_sweeper.SherlockedSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="sherlocked", node=SherlockedSweeperConf, provider="sherlocked"
)


class SherlockedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch) -> None:
        if not getattr(self.launcher, "checks_every_job", False):
            super().validate_batch_is_legal(batch)
