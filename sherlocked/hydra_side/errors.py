"""A mistyped command line as one line that names the valid choices, instead of Hydra's report of it; and a write
the storage refused (a full disk, a read-only one) as one line instead of a traceback.

    python -m sherlocked.train dataset=mnist5k
    sherlocked: dataset=mnist5k: no such dataset (did you mean mnist_5k?); choose from cifar10, fashion_mnist, ...

Hydra prints a config it cannot compose as several lines (the config search path, a suggested
`+key=value` that adds a key no part of the run reads) and exits 1; these are the same errors in
one line, exit code 2, raised before anything is written. Torch-free.
"""

import errno
import os
import sys
from contextlib import contextmanager

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sherlocked.hydra_side import adapter
from sherlocked.spec.config import suggestion


def one_line(error: Exception) -> str | None:
    """The error in one line naming what may be typed instead; None for an error that is not about the command
    line's configuration."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        if error.options is None or not group:  # a config name, not an option of a group
            return f"no config named {error.missing_cfg_file!r}"
        return f"{group}={option}: no such {group}{suggestion(option, error.options)}; choose from " + ", ".join(
            error.options
        )
    if isinstance(error, ValueError) and str(error).startswith("Only one of --run"):  # Hydra's options, combined
        return str(error)
    if isinstance(error, OverrideParseException):
        return f"{error.override}: not an override Hydra can read ({error.message.splitlines()[0]})"
    if isinstance(error, ConfigCompositionException) and isinstance(error.__cause__, OmegaConfBaseException):
        return unknown_key(error.__cause__) or f"{str(error).splitlines()[0]} {error.__cause__.msg.splitlines()[0]}"
    if isinstance(error, ConfigCompositionException):  # e.g. +key=value for a key the config has: Hydra's lines
        return " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return None


# What storage says when it refuses a write: not a bug to trace, a condition to name (what was written is whole:
# every file is written to a temporary and renamed into place, sherlocked.runtime.atomic.replacing).
FULL = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some of your quota"}
REFUSED = {errno.EROFS, errno.EACCES, errno.EPERM}


def storage_refused(error: Exception) -> str | None:
    """A write the storage refused (full, over quota, read-only, not permitted) in one line; None for other errors."""
    if not isinstance(error, OSError) or error.errno not in {*FULL, *REFUSED}:
        return None
    where = error.filename2 or error.filename
    what = f"{error.strerror} writing {where}" if where else error.strerror
    fix = FULL.get(error.errno, "write elsewhere (hydra.run.dir=DIR, or hydra.sweep.dir=DIR for a sweep)")
    return f"{what}: {fix}, then run the same command again (every result written so far is whole)"


def unknown_option(argv: list[str], ours: list[str]) -> str | None:
    """An option neither Hydra nor sherlocked (`ours`: --plan) takes, in one line naming the options; None if all are
    known. Hydra's own answer is its usage in eight lines, which does not mention --plan."""
    options = [*ours, *adapter.command_line_options()]
    for arg in argv:
        name = arg.split("=", 1)[0]
        if not arg.startswith("-") or name in options:
            continue
        if sum(option.startswith(name) for option in options if option.startswith("--")) == 1 and len(name) > 2:
            continue  # argparse takes a unique prefix: --multi for --multirun
        long = [option for option in options if option.startswith("--")]
        return f"{arg}: no such option{suggestion(name, long)}; options: " + ", ".join(long)
    return None


def unknown_key(cause: OmegaConfBaseException) -> str | None:
    """`trainer.max_epoch` for `trainer.max_epochs`: the key, the closest one its parent has, the parent's keys."""
    parent = cause.parent_node
    if not cause.full_key or not OmegaConf.is_dict(parent) or cause.key in parent:
        return None
    where, _, key = str(cause.full_key).rpartition(".")
    keys = [k for k in parent if not str(k).startswith("_") and k != "hydra"]
    owner = where or "the config"
    return f"{cause.full_key}: {owner} has no key {key}{suggestion(str(key), map(str, keys))}; its keys: " + ", ".join(
        map(str, keys)
    )


@contextmanager
def reported():
    """Around Hydra's entry point: a configuration error the command line made is said in one line (exit code 2).

    Hydra raises an error instead of reporting it where HYDRA_FULL_ERROR is set; a user who set it
    asked for the whole trace and gets it."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except Exception as error:
        line = one_line(error)
        os.environ.pop("HYDRA_FULL_ERROR", None)
        if line is None and (refused := storage_refused(error)):
            print(f"sherlocked: {refused}", file=sys.stderr)
            sys.exit(1)
        if line is None:  # not the command line's: Hydra's own report, as without this
            adapter.report(error)
        print(f"sherlocked: {line}", file=sys.stderr)
        sys.exit(2)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
