"""Hydra sweeper `hydra/sweeper=sherlocked`, conf/train.yaml's default: Hydra's basic sweeper, except that
it does not compose every job up front for a launcher that checks every job itself before writing any.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh seed=0,1

The basic sweeper composes each job once to validate the batch (0.1-0.3 s a job here), and a
launcher composes it again; the population launcher composes one job per group and derives and
checks the rest (sherlocked.hydra_side.adapter), so the first composition would be most of a sweep's
overhead. With any other launcher this sweeper is the basic one. It parses the command line
through sherlocked.hydra_side.adapter.parse, so each distinct override is parsed once a sweep.

It also reads a finished sweep back from read-only storage: Hydra's sweeper stops on writing
multirun.yaml again; this one leaves an existing multirun.yaml it cannot write as it is.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from sherlocked.hydra_side.adapter import basic_sweeper, parse

BasicSweeper, BasicSweeperConf = basic_sweeper()

log = logging.getLogger(__name__)


@dataclass
class SherlockedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.sherlocked_launcher.sherlocked_sweeper.SherlockedSweeper"
    # A sweep kept in a config (an experiment preset) or given as +hydra.sweeper.params.KEY='a,b': a dict, not
    # Hydra's None, so that keys can be added to it on the command line.
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="sherlocked", node=SherlockedSweeperConf, provider="sherlocked"
)


class SherlockedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch) -> None:
        if not getattr(self.launcher, "checks_every_job", False):
            super().validate_batch_is_legal(batch)

    def sweep(self, arguments: list[str]) -> list:
        """BasicSweeper.sweep, but an existing multirun.yaml that cannot be written is kept."""
        overrides = parse([*self._parse_config(), *arguments], self.hydra_context.config_loader)
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        if not getattr(self.launcher, "plan", False):  # a plan writes nothing (hydra.launcher.plan=true)
            self.save_config()
        returns, first_index = [], 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=first_index)
            for job_return in results:
                _ = job_return.return_value  # a job that raised raises here, as in Hydra's sweeper
            returns.append(results)
            first_index += len(batch)
        return returns

    def save_config(self) -> None:
        """multirun.yaml, as Hydra's sweeper writes it; one that exists and cannot be written is kept."""
        saved = Path(self.config.hydra.sweep.dir) / "multirun.yaml"
        saved.parent.mkdir(parents=True, exist_ok=True)
        try:
            OmegaConf.save(self.config, saved)
        except OSError as error:
            if not saved.is_file():
                raise
            log.warning(f"{saved} left as it is ({error.strerror})")
