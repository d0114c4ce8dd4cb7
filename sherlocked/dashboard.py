"""TensorBoard over a sweep: one HParams experiment with the values every key took, and one run per configuration
with the mean and spread over its seeds.

    python -c "from sherlocked.dashboard import write_experiment; write_experiment('outputs/sweeps/demo')"

TensorBoard takes the first experiment summary it finds. Lightning's log_hyperparams writes one
into every run, without the values each key takes, so act1..actN get no filter and the columns
are chosen alphabetically. Here a run writes only its session (sherlocked.training.sessions: its
HParams and final metrics); the sweep writes the one experiment summary, into
<sweep dir>/hparams/ (replaced at the end of every sweep: TensorBoard keeps the first summary of
a tag it reads, so an older one must go): each key with the values the runs actually took (a
discrete domain: a filter per value), the keys that vary first (TensorBoard's default columns),
final test accuracy as the first metric.

A study of 100,000 runs is more curves than anyone can read (and than TensorBoard's page draws),
so the sweep also writes <sweep dir>/tensorboard/mean/<configuration> (write_means): for each
configuration (the swept keys but the seed) the mean and standard deviation over seeds of every
per-epoch curve, and an HParams session with the mean and std of the final metrics. With
per-job runs turned off (logger=null) a 100,000-run study is ~11,000 such runs. Everything
here is read from the sweep's results table and written with TensorBoard's own event writer:
no torch.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from sherlocked import layout, table
from sherlocked.config import ACT
from sherlocked.table import HPARAMS

METRICS = {  # scalar tag: what the HParams tab calls it, in this order
    "hp/test_acc": "final test accuracy",
    "hp/test_loss": "final test loss",
    "hp/train_loss": "final train loss",
    "hp/test_acc_std": "final test accuracy: std over seeds",  # a configuration's mean run only
    "hp/runs": "runs averaged",
}
CURVES = {"curve.test_acc": "accuracy/test", "curve.test_loss": "loss/test", "curve.train_loss": "loss/train_epoch"}
FINALS = {"final.test_acc": "hp/test_acc", "final.test_loss": "hp/test_loss", "final.train_loss": "hp/train_loss"}


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
    writer = fresh_writer(layout.experiment(sweep_dir))
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    writer.add_event(event(plugin_summary(metadata.EXPERIMENT_TAG, experiment=experiment)))
    writer.close()
    return len(rows)


def fresh_writer(folder: Path) -> EventFileWriter:
    """An event writer into `folder`, whose older event files go: TensorBoard keeps the first summary of a tag
    it reads, and shows a step written twice twice."""
    for old in Path(folder).glob("events.out.tfevents.*"):
        old.unlink()
    return EventFileWriter(str(folder))


def plugin_summary(tag: str, **data) -> Summary:
    """A summary of the HParams plugin (an experiment, a session's start or end): what tensorboard's own helpers
    build, without TensorFlow."""
    content = HParamsPluginData(**data, version=metadata.PLUGIN_DATA_VERSION).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def session_summaries(hparams: dict) -> tuple[Summary, Summary]:
    """A run's HParams session: its start (the values of its keys) and its end; its metrics are its hp/* scalars."""
    start = SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        value = shown(value)
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, int | float):
            start.hparams[name].number_value = value
        else:
            start.hparams[name].string_value = value
    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return (
        plugin_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        plugin_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    )


def event(summary: Summary, step: int = 0) -> Event:
    return Event(wall_time=time.time(), step=step, summary=summary)


def scalars(values: dict[str, float]) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items()])


def write_means(sweep_dir: Path) -> int:
    """Each configuration's mean run (see the module's docstring), from the results table; returns how many."""
    rows = table.read(sweep_dir, ["status", "overrides", *CURVES, *FINALS], prefixes=(HPARAMS,))
    rows = rows[rows["status"] != "failed"]
    if rows.empty:
        return 0
    names = configurations(rows["overrides"])
    for name, group in rows.groupby(names, sort=False):
        write_mean(layout.mean_run(sweep_dir, name), group)
    return len(set(names))


def configurations(overrides: pd.Series) -> list[str]:
    """Each run's configuration: its overrides of the keys that take several values in the sweep, the seed aside."""
    values: dict[str, set] = {}
    for line in (line for lines in overrides for line in lines):
        key, _, value = line.partition("=")
        values.setdefault(key, set()).add(value)
    swept = {key for key, seen in values.items() if len(seen) > 1 and key.lstrip("+~") != "seed"}
    return [",".join(o for o in lines if o.partition("=")[0] in swept) or "all" for lines in overrides]


def write_mean(folder: Path, group: pd.DataFrame) -> None:
    """One configuration's runs as one: per epoch, the mean and std (ddof 0) of every curve over its seeds;
    its session, with the mean and std of the final metrics."""
    writer = fresh_writer(folder)
    epochs = 0
    for column, tag in CURVES.items():
        curves = [np.asarray(curve, dtype=float) for curve in group[column]]
        epochs = min((len(curve) for curve in curves), default=0)
        stack = np.array([curve[:epochs] for curve in curves])
        for epoch in range(epochs):
            mean, std = stack[:, epoch].mean(), stack[:, epoch].std()
            writer.add_event(event(scalars({tag: mean, f"{tag}_std": std}), step=epoch + 1))
    shared = {name[len(HPARAMS) :]: value for name, value in group.iloc[0].items() if name.startswith(HPARAMS)}
    start, end = session_summaries({k: v for k, v in shared.items() if k != "seed" and not pd.isna(v)})
    finals = {tag: group[column].astype(float).mean() for column, tag in FINALS.items()}
    finals.update({"hp/test_acc_std": group["final.test_acc"].astype(float).std(ddof=0), "hp/runs": len(group)})
    for summary in (start, scalars(finals), end):
        writer.add_event(event(summary, step=epochs))
    writer.close()
