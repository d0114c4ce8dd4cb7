"""sherlocked's Hydra callback (registered in conf/train.yaml, for any launcher): Hydra's hooks wired to the sweep's
parts, and nothing else.

    on_run_start        a single run's checks (sherlocked.sweep.preflight)
    on_multirun_start   a sweep's checks, then its live progress (sherlocked.sweep.progress)
    on_job_end          the job counted, the sweep's line
    on_multirun_end     the end of the sweep (sherlocked.sweep.finish): table, aggregates, answer, summary
"""

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sherlocked.records.results import Result
from sherlocked.sweep import finish, preflight
from sherlocked.sweep.progress import SweepProgress, Watch


class StudyCallback(Callback):
    reads_job_config = False  # on_job_start/on_job_end read only the result: launchers may skip building it

    def __init__(self):
        self.progress: SweepProgress | None = None
        self.watch: Watch | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        preflight.check_run(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.progress = SweepProgress(preflight.check_sweep(config))
        self.watch = Watch(config.hydra.sweep.dir, self.progress.line, self.progress.live_line)
        self.watch.start()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if self.progress is None:  # a single run
            return
        result = job_return.return_value if isinstance(job_return.return_value, Result) else None
        self.progress.add(result, job_return.overrides)
        self.watch.say(self.progress.line(self.watch.populations()), last=self.progress.done == self.progress.total)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.progress is None:
            return
        self.watch.stop()
        finish.end(config.hydra.sweep.dir, self.progress)
