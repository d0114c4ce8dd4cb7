"""Derived job configs and .hydra/ files equal what Hydra composes and run_job writes, byte for byte."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sherlocked import jobdirs
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
    template = jobdirs.Template(composed(JOBS[0]))
    parsed = jobdirs.parse(JOBS)
    assert template.derivable(parsed)
    for index, (overrides, job) in enumerate(zip(JOBS, parsed)):
        derived = template.derive(job, index)
        hydra = composed(overrides)
        task = OmegaConf.masked_copy(hydra, [k for k in hydra if k != "hydra"])
        assert derived.task == OmegaConf.to_container(task, enum_to_str=True)
        assert derived.resolved == OmegaConf.to_container(task, resolve=True)
        expected = OmegaConf.to_container(hydra.hydra, enum_to_str=True)
        node = derived.hydra["hydra"]
        assert (node["job"].pop("id"), node["job"].pop("num")) == (str(index), index)  # set by launchers
        assert node["runtime"].pop("output_dir").endswith(node["job"]["override_dirname"])  # set by run_job
        expected["runtime"].pop("output_dir", None)
        expected["job"].pop("id"), expected["job"].pop("num")  # ??? in a composition outside a launcher
        assert node == expected
        assert jobdirs.to_yaml(derived.task) == OmegaConf.to_yaml(task)
        assert jobdirs.to_yaml(derived.hydra) == OmegaConf.to_yaml(OmegaConf.create(derived.hydra))


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
    template = jobdirs.Template(composed(jobs[0]))
    assert not template.derivable(jobdirs.parse(jobs)), why


def test_an_interpolation_reading_a_member_key_is_composed():
    template = jobdirs.Template(composed(["seed=0", "+tag=run_${seed}"]))
    assert not template.derivable(jobdirs.parse([["seed=0", "+tag=run_${seed}"], ["seed=1", "+tag=run_${seed}"]]))


def test_a_sweeps_check_derives_member_values_and_composes_the_rest_to_what_composing_gives():
    """sherlocked.sweep.each_swept_value: one config per swept value, checked before the sweep starts."""
    from omegaconf import open_dict

    from sherlocked.sweep import each_swept_value, parsed_overrides

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
