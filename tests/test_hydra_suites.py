"""Hydra's own conformance suites for launcher plugins (shipped in hydra-core, applied by every official launcher
plugin in its tests), applied to hydra/launcher=population and hydra/sweeper=sherlocked.

The population launcher batches sherlocked's own task; the suites' tasks are other task functions and apps,
which it runs exactly as Hydra's basic launcher does. (Its own task's jobs share a process, so they get no
<job name>.log each: the one documented difference, docs/scaling.md.)
"""

import pytest
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

SWEEPER = ["hydra/sweeper=sherlocked"]


@pytest.mark.parametrize(("launcher_name", "overrides"), [("population", []), ("population", SWEEPER)])
class TestPopulationLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(("launcher_name", "overrides"), [("population", ["hydra.sweeper.max_batch_size=2"])])
class TestPopulationLauncherInBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize(
    ("task_launcher_cfg", "extra_flags"),
    [({}, ["-m", "hydra/launcher=population"]), ({}, ["-m", "hydra/launcher=population", *SWEEPER])],
)
class TestPopulationLauncherIntegration(IntegrationTestSuite):
    pass
