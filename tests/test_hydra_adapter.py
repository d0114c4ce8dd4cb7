"""Derived job configs and .hydra/ files equal what Hydra composes and run_job writes, byte for byte."""

import copy
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sherlocked.hydra_side import adapter
from sherlocked.records.yaml_text import to_yaml
from tests.conftest import CONF

BASE = ["dataset=mnist_5k", "trainer=cpu", "model.widths=[784,16,12,12,10]"]
JOBS = [  # member values differ; the rest is the group's
    ["+act4=relu", "act2=sigmoid", "model.batch_norm=none", "seed=0", *BASE],
    ["+act4=tanh", "act2='relu|tanh'", "model.batch_norm=[1,3]", "seed=7", *BASE],
    ["+act4=selu", "act2=null", "model.batch_norm=all", "seed=2", *BASE],
]


def composed(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_derived_configs_equal_hydras_own_composition():
    template = adapter.Template(composed(JOBS[0]))
    parsed = [adapter.parse(overrides) for overrides in JOBS]
    assert template.derivable(parsed)
    for index, (overrides, job) in enumerate(zip(JOBS, parsed)):
        derived = template.derive(job, index)
        derived_task, derived_hydra = adapter.DerivedJob(template, job).files(derived)
        hydra = composed(overrides)
        task = OmegaConf.masked_copy(hydra, [k for k in hydra if k != "hydra"])
        assert derived_task == OmegaConf.to_container(task, enum_to_str=True)
        assert derived.config == OmegaConf.to_container(task, resolve=True)
        expected = OmegaConf.to_container(hydra.hydra, enum_to_str=True)
        node = copy.deepcopy(derived_hydra["hydra"])
        assert (node["job"].pop("id"), node["job"].pop("num")) == (str(index), index)  # set by launchers
        assert node["runtime"].pop("output_dir").endswith(node["job"]["override_dirname"])  # set by run_job
        expected["runtime"].pop("output_dir", None)
        expected["job"].pop("id"), expected["job"].pop("num")  # ??? in a composition outside a launcher
        assert node == expected
        assert to_yaml(derived_task) == OmegaConf.to_yaml(task)
        assert to_yaml(derived_hydra) == OmegaConf.to_yaml(OmegaConf.create(derived_hydra))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("jobs", "why"),
    [
        ([["seed=0"], ["seed=1", "+act4=relu"]], "the jobs add different member keys"),
        ([["seed=0"], ["~act3"]], "a deletion"),
        ([["seed=0"], ["seed=${oc.env:SEED}"]], "an interpolated value"),
        ([["model.batch_norm=none"], ["model.batch_norm={a:1}"]], "a mapping, which Hydra would merge"),
    ],
)
def test_what_cannot_be_derived_exactly_is_composed(jobs, why):
    template = adapter.Template(composed(jobs[0]))
    assert not template.derivable([adapter.parse(overrides) for overrides in jobs]), why


def test_an_interpolation_reading_a_member_key_is_composed():
    template = adapter.Template(composed(["seed=0", "+tag=run_${seed}"]))
    jobs = [["seed=0", "+tag=run_${seed}"], ["seed=1", "+tag=run_${seed}"]]
    assert not template.derivable([adapter.parse(overrides) for overrides in jobs])


@pytest.mark.slow
def test_a_sweeps_check_derives_member_values_and_composes_the_rest_to_what_composing_gives():
    """sherlocked.sweep.preflight.each_swept_value: one config per swept value, checked before the sweep starts."""
    from omegaconf import open_dict

    from sherlocked.sweep.preflight import each_swept_value, parsed_overrides

    lines = [
        "act2=relu,sigmoid",
        "seed=0,3",
        "model.batch_norm=none,all",
        "trainer.max_epochs=1,2",
        "dataset=mnist,mnist_5k",
    ]
    firsts = ["act2=relu", "seed=0", "model.batch_norm=none", "trainer.max_epochs=1", "dataset=mnist"]
    seconds = ["act2=sigmoid", "seed=3", "model.batch_norm=all", "trainer.max_epochs=2", "dataset=mnist_5k"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        config = compose("train", overrides=firsts, return_hydra_config=True)
        with open_dict(config):
            config.hydra.overrides.task = lines  # as the sweep's command line sets it
        configs = list(each_swept_value(config, parsed_overrides(config)))
        assert len(configs) == 1 + len(lines)
        derived = [isinstance(c, dict) for c in configs[1:]]
        assert derived == [True, True, True, False, False]  # member keys derived, the others composed
        for i, (got, value) in enumerate(zip(configs[1:], seconds)):
            overrides = firsts[:i] + [value] + firsts[i + 1 :]
            expected = compose("train", overrides=overrides)
            got = got if isinstance(got, dict) else OmegaConf.masked_copy(got, [k for k in got if k != "hydra"])
            assert OmegaConf.to_container(OmegaConf.create(got), resolve=True) == OmegaConf.to_container(
                expected, resolve=True
            ), value


class Quiet:
    """Hydra's callbacks, silent: run_job calls them around the task."""

    def on_job_start(self, **kwargs) -> None:
        pass

    def on_job_end(self, **kwargs) -> None:
        pass


def resolved(cfg) -> dict:
    """A task that returns the config it receives, resolved."""
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("group", "derived"),
    [
        (JOBS, True),  # member values set in one composition
        ([["seed=0", "+tag=run_${seed}", *BASE], ["seed=1", "+tag=run_${seed}", *BASE]], False),  # reads a member key
        ([["seed=0", "hydra.job.chdir=true", *BASE], ["seed=1", "hydra.job.chdir=true", *BASE]], False),
    ],
)
def test_a_groups_job_dirs_are_what_hydras_own_run_job_writes_byte_for_byte(tmp_path, group, derived):
    """group_jobs plans a group (nothing written), HydraJob.write writes it; Hydra's run_job writes the same jobs
    into another sweep dir: the same files, byte for byte, and the engine gets the config the task would."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        context = HydraContext(config_loader=loader, callbacks=Quiet())
        ours, theirs = tmp_path / "ours", tmp_path / "theirs"
        master = compose("train", [f"hydra.sweep.dir={ours}"], return_hydra_config=True)
        indices = list(range(5, 5 + len(group)))
        sides = {}
        jobs = adapter.group_jobs(context, master, group, indices, sides)
        assert [job.index for job in jobs] == indices and not ours.exists()  # planned: nothing written yet
        assert isinstance(sides[indices[0]], adapter.DerivedJob) == derived
        assert all(job.composed_alone != derived for job in jobs)
        for job in jobs:
            sides[job.index].write(job)
        reference = compose("train", [f"hydra.sweep.dir={theirs}"], return_hydra_config=True)
        for job, overrides in zip(jobs, group):
            config = loader.load_sweep_config(reference, list(overrides))
            config.hydra.job.id = config.hydra.job.num = job.index
            received = run_job(resolved, config, "hydra.sweep.dir", "hydra.sweep.subdir", context, False)
            assert job.config == received.return_value
            assert job.job_dir.relative_to(ours) == Path(config.hydra.runtime.output_dir).relative_to(theirs)
    files = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
    assert len(files) == 3 * len(group) and files == sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
    for name in files:
        assert (ours / name).read_text().replace(str(ours), "SWEEP") == (theirs / name).read_text().replace(
            str(theirs), "SWEEP"
        )
