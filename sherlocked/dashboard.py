"""TensorBoard's HParams tab over a sweep: one experiment summary, with the values every key took.

    python -c "from sherlocked.dashboard import write_experiment; write_experiment('outputs/sweeps/demo')"

TensorBoard takes the first experiment summary it finds. Lightning's log_hyperparams writes one
into every run, without the values each key takes, so act1..actN get no filter and the columns
are chosen alphabetically. Here a run writes only its session (sherlocked.training.sessions: its
HParams and final metrics); the sweep writes the one experiment summary, into
<sweep dir>/hparams/ (replaced at the end of every sweep: TensorBoard keeps the first summary of
a tag it reads, so an older one must go): each key with the values the runs actually took (a
discrete domain: a filter per value), the keys that vary first (TensorBoard's default columns),
final test accuracy as the first metric. Written with TensorBoard's own event writer: no torch.
"""

import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from sherlocked import layout, table
from sherlocked.config import ACT
from sherlocked.table import HPARAMS

METRICS = {  # scalar tag: what the HParams tab calls it, in this order
    "hp/test_acc": "final test accuracy",
    "hp/test_loss": "final test loss",
    "hp/train_loss": "final train loss",
}


def shown(value):
    """A value TensorBoard's HParams can hold (a string, a number or a bool)."""
    return value if isinstance(value, bool | int | float | str) else str(value)


def hparam_info(name: str, values: list) -> api_pb2.HParamInfo:
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, bool) for v in distinct):
        kind = api_pb2.DATA_TYPE_BOOL
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct):
        kind = api_pb2.DATA_TYPE_FLOAT64
    else:
        kind, distinct = api_pb2.DATA_TYPE_STRING, sorted({str(v) for v in distinct})
    info = api_pb2.HParamInfo(name=name, type=kind, differs=len(distinct) > 1)
    info.domain_discrete.extend(distinct)
    return info


def column_order(name: str, differs: bool) -> tuple:
    """Varying keys first (act1, act2, ... in layer order, then by name), then the constant ones."""
    act = ACT.fullmatch(name)
    return (not differs, 0 if act else 1, int(act[1]) if act else 0, name)


def write_experiment(sweep_dir: Path) -> int:
    """The sweep's experiment summary, from its results table's trained runs; returns the runs counted."""
    sweep_dir = Path(sweep_dir)
    rows = table.read(sweep_dir, ["status"], prefixes=(HPARAMS,))
    rows = rows[rows["status"] != "failed"]
    if rows.empty:
        return 0
    names = [c for c in rows if c.startswith(HPARAMS)]
    infos = [hparam_info(n[len(HPARAMS) :], [shown(v) for v in rows[n].dropna().tolist()]) for n in names]
    infos.sort(key=lambda info: column_order(info.name, info.differs))
    metrics = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=shown_as) for tag, shown_as in METRICS.items()
    ]
    folder = layout.experiment(sweep_dir)
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    writer = EventFileWriter(str(folder))
    writer.add_event(Event(wall_time=time.time(), summary=experiment_summary(experiment)))
    writer.close()
    return len(rows)


def experiment_summary(experiment: api_pb2.Experiment) -> Summary:
    """The summary TensorBoard reads an experiment from (what tensorboard's own helper builds, without TensorFlow)."""
    content = HParamsPluginData(experiment=experiment, version=metadata.PLUGIN_DATA_VERSION).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
    return Summary(value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=SummaryMetadata(plugin_data=plugin))])
