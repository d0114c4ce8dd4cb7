"""TensorBoard over a sweep: one HParams experiment with the values every key took, and one run per configuration
with the mean and spread over its seeds.

    python -c "from sherlocked.records.dashboard import write_experiment; write_experiment('outputs/sweeps/demo')"

TensorBoard takes the first experiment summary it finds. Lightning's log_hyperparams writes one
into every run, without the values each key takes, so act1..actN get no filter and the columns
are chosen alphabetically. Here a run writes only its session (sherlocked.training.trackers.tensorboard_runs: its
HParams and final metrics); the sweep writes the one experiment summary, into
<sweep dir>/hparams/ (replaced at the end of every sweep: TensorBoard keeps the first summary of
a tag it reads, so an older one must go): each key with the values the runs actually took (a
discrete domain: a filter per value), the keys that vary first (TensorBoard's default columns),
final test accuracy as the first metric. Its time of writing (time_created_secs) tells it apart from
what TensorBoard infers without it: sherlocked.board serves once TensorBoard answers with it.

A study of 100,000 runs is more curves than anyone can read (and than TensorBoard's page draws),
so the sweep also writes <sweep dir>/tensorboard/mean/<configuration> (write_means): for each
configuration (the swept keys but the seed) the mean and standard deviation over seeds of every
per-epoch curve, and an HParams session with the mean and std of the final metrics. With
per-job runs turned off (logger=null) a 100,000-run study is ~11,000 such runs. Everything
here is read from the sweep's results table and written with TensorBoard's own event writer:
no torch.
"""

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from sherlocked.records import layout, table
from sherlocked.records.results import read_result
from sherlocked.records.table import HPARAMS
from sherlocked.spec.config import ACT

# The HParams tab's metrics: the last value of a run's curves (its final epoch's), so that no scalar exists only
# for HParams (Time Series drew each as a dot at one step, in a group of its own), in this order.
METRICS = {
    "accuracy/test": "final test accuracy",
    "loss/test": "final test loss",
    "loss/train_epoch": "final train loss",
    "accuracy/test_std": "final test accuracy: std over seeds",  # a configuration's mean run only
}
CURVES = {"curve.test_acc": "accuracy/test", "curve.test_loss": "loss/test", "curve.train_loss": "loss/train_epoch"}
PAST_DEPTH = "none"  # an activation key past the model's depth (sherlocked.spec.config.hparams): no HParams column


def shown(value):
    """A value as TensorBoard's HParams shows it: a string, a float or a bool; a whole number as text (a seed is
    one of its values to tick, not a point on a continuous axis shown as 0.0000)."""
    if isinstance(value, bool | float | str):
        return value
    return str(value)


def hparam_info(name: str, values: list) -> api_pb2.HParamInfo:
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, bool) for v in distinct):
        kind = api_pb2.DATA_TYPE_BOOL
    elif all(isinstance(v, float) for v in distinct):
        kind = api_pb2.DATA_TYPE_FLOAT64
    else:  # whole numbers in their order (2 before 10)
        kind = api_pb2.DATA_TYPE_STRING
        distinct = sorted(
            {str(v) for v in distinct}, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v)
        )
    info = api_pb2.HParamInfo(name=name, type=kind, differs=len(distinct) > 1)
    info.domain_discrete.extend(distinct)
    return info


def columns(hparams: dict) -> dict:
    """A run's HParams as TensorBoard shows them: its activations up to its depth, every value shown()."""
    return {name: shown(v) for name, v in hparams.items() if not (ACT.fullmatch(name) and v == PAST_DEPTH)}


def column_order(name: str, differs: bool) -> tuple:
    """Varying keys first (act1, act2, ... in layer order, then by name), then the constant ones."""
    act = ACT.fullmatch(name)
    return (not differs, 0 if act else 1, int(act[1]) if act else 0, name)


def write_experiment(sweep_dir: Path) -> int:
    """The sweep's experiment summary, into <sweep dir>/hparams; returns the runs counted."""
    return write_experiment_of([sweep_dir], layout.experiment(sweep_dir))


def write_experiment_of(sweep_dirs: list[Path], folder: Path, run_dirs: Sequence[Path] = ()) -> int:
    """One experiment summary for the trained runs of the sweeps' results tables and of the single runs' result.json
    files (run_dirs: a single run has no table), into `folder`; returns the runs counted. Each key's values are
    those any of its runs took (a filter for each), the keys that vary first."""
    found = [*(trained_rows(sweep_dir) for sweep_dir in sweep_dirs), result_rows(run_dirs)]
    # As objects: a key some runs lack must not turn the whole numbers of the others into floats (seed 3.0).
    found = [frame.astype(object) for frame in found if not frame.empty]
    rows = pd.concat(found or [pd.DataFrame()], ignore_index=True)
    if rows.empty:
        return 0
    infos = []
    for name in (c[len(HPARAMS) :] for c in rows if c.startswith(HPARAMS)):
        values = [shown(v) for v in rows[HPARAMS + name].dropna().tolist()]
        if ACT.fullmatch(name):  # "none" past a model's depth is no value (batch_norm's "none" is one)
            values = [v for v in values if v != PAST_DEPTH]
        if values:
            infos.append(hparam_info(name, values))
    infos.sort(key=lambda info: column_order(info.name, info.differs))
    metrics = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=shown_as) for tag, shown_as in METRICS.items()
    ]
    writer = fresh_writer(folder)
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time())
    writer.add_event(event(plugin_summary(metadata.EXPERIMENT_TAG, experiment=experiment)))
    writer.close()
    return len(rows)


def trained_rows(sweep_dir: Path) -> pd.DataFrame:
    rows = table.read(Path(sweep_dir), ["status"], prefixes=(HPARAMS,))
    return rows[rows["status"] != "failed"]


def result_rows(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """The trained runs among the run dirs' result.json files, as the table's rows give them (status, hp.<name>)."""
    results = [result for result in map(read_result, run_dirs) if result is not None and result.status != "failed"]
    rows = [{"status": r.status, **{HPARAMS + name: table.scalar(v) for name, v in r.hparams.items()}} for r in results]
    return pd.DataFrame(rows)


def fresh_writer(folder: Path) -> EventFileWriter:
    """An event writer into `folder`, whose older event files go: TensorBoard keeps the first summary of a tag
    it reads, and shows a step written twice twice."""
    for old in Path(folder).glob(layout.EVENT_FILES):
        old.unlink()
    return EventFileWriter(str(folder))


def plugin_summary(tag: str, **data) -> Summary:
    """A summary of the HParams plugin (an experiment, a session's start or end): what tensorboard's own helpers
    build, without TensorFlow."""
    content = HParamsPluginData(**data, version=metadata.PLUGIN_DATA_VERSION).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def session_summaries(hparams: dict) -> tuple[Summary, Summary]:
    """A run's HParams session: its start (the values of its keys, as columns() shows them) and its end; its
    metrics are the last values of its curves (METRICS)."""
    start = SessionStartInfo(start_time_secs=time.time())
    for name, value in columns(hparams).items():
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
    rows = table.read(sweep_dir, ["status", "overrides", *CURVES], prefixes=(HPARAMS,))
    # Named by what the whole sweep varied, failed jobs too: a mean run keeps its name when they are retried.
    names = pd.Series(configurations(rows["overrides"]), index=rows.index)
    trained = rows["status"] != "failed"
    if not trained.any():
        return 0
    # By a Series of names: a list of one name (one job) would be taken for a list of keys, and name tuples.
    for name, group in rows[trained].groupby(names[trained], sort=False):
        write_mean(layout.mean_run(sweep_dir, name), group)
    return int(names[trained].nunique())


def configurations(overrides: pd.Series) -> list[str]:
    """Each run's configuration: its overrides of the keys that take several values in the sweep, the seed aside."""
    values: dict[str, set] = {}
    for line in (line for lines in overrides for line in lines):
        key, _, value = line.partition("=")
        values.setdefault(key, set()).add(value)
    swept = {key for key, seen in values.items() if len(seen) > 1 and key.lstrip("+~") != "seed"}
    return [",".join(o for o in lines if o.partition("=")[0] in swept) or "all" for lines in overrides]


def write_mean(folder: Path, group: pd.DataFrame) -> None:
    """One configuration's runs as one: per epoch, the mean and std (ddof 0) of every curve over its seeds (their
    last values: its HParams metrics); its session, with how many runs it averages."""
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
    shared = {k: v for k, v in shared.items() if k != "seed" and not pd.isna(v)}
    start, end = session_summaries({**shared, "runs": len(group)})
    for summary in (start, end):
        writer.add_event(event(summary, step=epochs))
    writer.close()
