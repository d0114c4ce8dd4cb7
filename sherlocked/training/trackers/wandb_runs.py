"""Weights & Biases: each member a run, grouped by study, its keys as config; offline unless told otherwise.

    <paths.outputs>/wandb/offline-run-<time>-<id>/    wandb sync <that folder>   (WANDB_MODE=online: at once)

A population's K runs live in one process at once (reinit="create_new"). Epoch curves are plotted against
`epoch`, step curves (the training loss, the diagnostics) against `trainer/global_step`, as Lightning's
WandbLogger does. A resumed population goes on with the same run ids (kept in its checkpoint), so W&B
continues each run; an online store holds whatever a killed run sent after its checkpoint.
"""

import os
from collections.abc import Sequence

import wandb

from sherlocked.records.results import FINAL, Result
from sherlocked.training.trackers import Rows, Tracker, is_epoch_curve, run_name, shown

EPOCH, STEP = "epoch", "trainer/global_step"  # the two x axes
# WandbLogger's arguments that are not wandb.init's (save_dir is its dir), and wandb.init's that sherlocked sets per
# member (a name, id or config in the logger's config would be every member's)
NOT_INIT = {"_target_", "save_dir", "offline", "version", "log_model", "prefix", "checkpoint_name", "experiment"}
NOT_INIT |= {"name", "id", "config", "dir", "resume", "reinit", "settings"}


class WandbRuns(Tracker):
    def __init__(self, settings, jobs, saved):
        super().__init__(settings, jobs, saved)
        init = {key: value for key, value in self.settings.items() if key not in NOT_INIT}
        if self.settings.get("offline"):
            init["mode"] = "offline"
        own_service()
        ids = (saved or {}).get("ids") or [None] * len(self.jobs)
        self.runs = []
        for job, run_id in zip(self.jobs, ids):
            run = wandb.init(
                **init,
                dir=self.settings.get("save_dir") or str(job.job_dir),
                name=run_name(job),
                config=shown(job),
                id=run_id,
                resume="allow" if run_id else None,
                reinit="create_new",
                settings=wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True),
            )
            run.define_metric(STEP)
            run.define_metric(EPOCH)
            run.define_metric("*", step_metric=STEP)
            self.runs.append(run)
        self.epoch_curves_defined: set[str] = set()

    def log(self, rows: Rows) -> None:
        for step, values in rows:
            epoch = {name: v for name, v in values.items() if is_epoch_curve(name)}
            others = {name: v for name, v in values.items() if not is_epoch_curve(name)}
            for name in epoch.keys() - self.epoch_curves_defined:
                for run in self.runs:
                    run.define_metric(name, step_metric=EPOCH)
                self.epoch_curves_defined.add(name)
            for axis, group in ((EPOCH, epoch), (STEP, others)):
                if group:
                    for k, run in enumerate(self.runs):
                        run.log({axis: step, **{name: v[k] for name, v in group.items()}})

    def state(self) -> dict:
        return {"ids": [run.id for run in self.runs]}

    def finish(self, results: Sequence[Result]) -> None:
        for run, result in zip(self.runs, results):
            run.summary.update({FINAL + name: value for name, value in result.final.items()})
            run.summary["status"] = result.status
            if result.status == "diverged":
                run.tags = (*run.tags, "diverged")
            run.finish(exit_code=0)

    def fail(self) -> None:
        for run in self.runs:
            run.finish(exit_code=1)


def own_service() -> None:
    """This process's runs in a W&B service of its own, which ends with it: a service it inherits (WANDB_SERVICE, set
    by a parent that used wandb, or `wandb beta core start`) would keep a killed population's runs open, and the
    population resumed would find its run ids "in use". Once, before this process's first run: its own service
    then sets WANDB_SERVICE, for the runs it opens later."""
    global _OWN_SERVICE
    if not _OWN_SERVICE:
        os.environ.pop("WANDB_SERVICE", None)
        _OWN_SERVICE = True


_OWN_SERVICE = False
