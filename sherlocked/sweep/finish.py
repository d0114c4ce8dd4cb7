"""The end of a sweep: its results table compacted into one file, TensorBoard's aggregates (a mean run per
configuration, the one HParams experiment), the study's answer, and the summary as the sweep's last line; exit
code 1 if any job failed.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1
    ...
    answer: (x, sigmoid, relu) runs reach ... The report: python -m sherlocked.report outputs/sweeps/default
    sweep finished in outputs/sweeps/default: 4/4 jobs: 4 ok, 0 diverged, 0 failed, 0 skipped

The only module of sweep/ that asks report/ for anything: the answer, as the report's page gives it.
"""

import sys

from sherlocked.sweep.progress import SweepProgress, console


def end(sweep_dir: str, progress: SweepProgress) -> None:
    """What a sweep leaves besides its jobs' results, said; then its summary, and exit code 1 if a job failed."""
    tidy(sweep_dir)
    if answer := the_answer(sweep_dir):
        console.print(answer)
    console.print(f"sweep finished in {sweep_dir}: {progress.summary()}")
    if progress.counts["failed"]:
        sys.exit(1)


def tidy(sweep_dir: str) -> None:
    """The results table in one file; TensorBoard: a mean run per configuration, one HParams experiment. What goes
    wrong is said, never in place of the summary and the exit code (Hydra would make it a warning)."""
    # Imported here: the table (pandas, pyarrow) and TensorBoard's writer cost a second that a typo's or --plan's
    # answer would wait for.
    from sherlocked.records import table
    from sherlocked.records.dashboard import write_experiment, write_means

    try:
        table.compact(sweep_dir)
        write_means(sweep_dir)
        write_experiment(sweep_dir)
    except OSError as error:  # a finished sweep read back from read-only storage keeps its own
        console.print(f"the results table and TensorBoard's HParams experiment left as they are ({error.strerror})")
    except Exception as error:
        why = str(error).strip().splitlines()[0] if str(error).strip() else ""
        console.print(f"the results table and TensorBoard's runs were not finished: {type(error).__name__}: {why}")


def the_answer(sweep_dir: str) -> str | None:
    """The study's answer, as the report's page gives it; never in place of the sweep's summary."""
    from sherlocked.report.significance import answer

    try:
        return answer(sweep_dir)
    except Exception:  # a sweep of other keys, an unreadable table: the report will say
        return None
