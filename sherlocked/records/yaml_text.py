"""OmegaConf's YAML text, emitted by libyaml: a job's .hydra/ files and a run's hparams.yaml, as OmegaConf.to_yaml
(and Lightning's save_hparams_to_yaml, through it) would write them, in a tenth of the time.

    python -c "from sherlocked.records.yaml_text import to_yaml; print(to_yaml({'lr': 0.01, 'act': 'true'}))"

The one module besides sherlocked.hydra_side.adapter that reaches into a library's internals (omegaconf._utils, for
OmegaConf's representers: its string quoting); tests/test_hydra_adapter.py compares the text with Hydra's own.
"""

import yaml
from omegaconf._utils import get_omega_conf_dumper


class _Dumper(yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper):
    """OmegaConf's YAML (its string quoting), emitted by libyaml where PyYAML has it."""


for _type, _representer in get_omega_conf_dumper().yaml_representers.items():
    _Dumper.add_representer(_type, _representer)


def to_yaml(container) -> str:
    """What OmegaConf.to_yaml writes for a config whose plain, unresolved form is `container`."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_Dumper)
