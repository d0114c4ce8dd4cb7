"""A run's HParams session in TensorBoard: its keys and values, its final metrics, and hparams.yaml.

The sweep's one experiment summary, which names the values every key took, is written by
sherlocked.records.dashboard at the end of the sweep; a run writes only its session. Its metrics are the
last values of its curves (accuracy/test, ...): no scalar exists for HParams alone.
"""

from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

from sherlocked.records.dashboard import session_summaries
from sherlocked.records.yaml_text import to_yaml


def log_session(logger: TensorBoardLogger, hparams: Mapping) -> None:
    """One run's HParams session (its keys and values; its metrics are its curves' last values) and hparams.yaml."""
    values = {
        name: value if isinstance(value, bool | int | float | str) else str(value) for name, value in hparams.items()
    }
    logger.hparams.update(values)
    # hparams.yaml as Lightning's save_hparams_to_yaml writes it (OmegaConf's YAML), but emitted by libyaml:
    # Lightning's write, through OmegaConf.save, took a few ms a run; it leaves a file that exists alone.
    path = Path(logger.log_dir) / logger.NAME_HPARAMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(dict(logger.hparams)), encoding="utf-8")
    session_start, session_end = session_summaries(values)  # not its experiment: the sweep writes that
    writer = logger.experiment._get_file_writer()
    writer.add_summary(session_start)
    writer.add_summary(session_end)
