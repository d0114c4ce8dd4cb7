"""A run's HParams session in TensorBoard: its keys and values, its final metrics, and hparams.yaml.

The sweep's one experiment summary, which names the values every key took, is written by
sherlocked.dashboard at the end of the sweep; a run writes only its session.
"""

from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

from sherlocked.dashboard import session_summaries, shown
from sherlocked.hydra_adapter import to_yaml


def log_session(logger: TensorBoardLogger, hparams: Mapping, final: Mapping[str, float]) -> None:
    """One run's HParams session: its keys and values, its final metrics (hp/*), and hparams.yaml."""
    values = {name: shown(value) for name, value in hparams.items()}
    logger.hparams.update(values)
    # hparams.yaml as Lightning's save_hparams_to_yaml writes it (OmegaConf's YAML), but emitted by libyaml:
    # Lightning's write, through OmegaConf.save, took a few ms a run; it leaves a file that exists alone.
    path = Path(logger.log_dir) / logger.NAME_HPARAMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(dict(logger.hparams)), encoding="utf-8")
    logger.log_metrics({f"hp/{name}": value for name, value in final.items()})
    session_start, session_end = session_summaries(values)  # not its experiment: the sweep writes that
    writer = logger.experiment._get_file_writer()
    writer.add_summary(session_start)
    writer.add_summary(session_end)
