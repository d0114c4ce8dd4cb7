"""Hydra's own conformance suites for launcher plugins (shipped in hydra-core, applied by every official launcher
plugin in its tests), applied to hydra/launcher=population and hydra/sweeper=sherlocked.

The population launcher batches sherlocked's own task; the suites' tasks are other task functions and apps,
which it runs exactly as Hydra's basic launcher does. (Its own task's jobs share a process, so they get no
<job name>.log each: the one documented difference, docs/scaling.md.)
"""

import pytest
from hydra import version
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite

SWEEPER = ["hydra/sweeper=sherlocked"]


@pytest.fixture(autouse=True)
def unset_version_base(monkeypatch):
    """The suites expect Hydra's version_base unset, as in a fresh process (Hydra's plugins run them one plugin per
    session). Any earlier test that composes with version_base="1.3" sets it process-wide, and with it the default
    hydra.job.chdir the suites' checks of each job's log rely on."""
    monkeypatch.setattr(version.VersionBase.instance(), "version_base", version._UNSPECIFIED_)


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
