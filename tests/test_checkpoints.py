"""Population checkpoints: where they live, when they are saved, and what a damaged one does."""

import errno
from types import SimpleNamespace

from omegaconf import OmegaConf

from sherlocked.records import layout
from sherlocked.records.job import Job
from sherlocked.training import checkpoints
from sherlocked.training.engine import run


def plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def path_of(job_dirs, configs, sweep_dir=None):
    """Where the population of these jobs (in this order) keeps its checkpoint."""
    return layout.checkpoint([Job(config, job_dir, sweep_dir=sweep_dir) for config, job_dir in zip(configs, job_dirs)])


def test_a_population_is_keyed_by_its_members_in_order_not_by_where_its_data_lives(make_cfg, tmp_path):
    a, b = plain(make_cfg("seed=0")), plain(make_cfg("seed=1"))
    dirs = [tmp_path / "sweep" / "seed=0", tmp_path / "sweep" / "seed=1"]
    path = path_of(dirs, [a, b])
    assert path.parent == tmp_path / "sweep" / layout.CHECKPOINTS
    moved = plain(make_cfg("seed=0", "dataset.root=/elsewhere"))
    assert path_of(dirs, [moved, b]) == path
    assert path_of(dirs[::-1], [b, a]) != path  # member k is another model
    assert path_of(dirs, [a, plain(make_cfg("seed=1", "model.optimizer.lr=0.5"))]) != path
    assert path_of(dirs[:1], [a]).parent == dirs[0] / layout.CHECKPOINTS  # a single run: its own dir
    nested = [tmp_path / "sweep" / "model" / f"optimizer=adam,seed={s}" for s in (0, 1)]  # a group's "/" nests them
    assert path_of(nested, [a, b], sweep_dir=tmp_path / "sweep") == path  # a sweep's populations: in its dir


def test_a_checkpoint_is_saved_at_most_every_so_many_seconds_and_renamed_into_place(tmp_path):
    saved = []

    def save_checkpoint(path, weights_only):
        assert weights_only is False  # the whole state, said (Lightning logs a line where it is left unset)
        path.write_bytes(b"checkpoint")
        saved.append(path)

    trainer = SimpleNamespace(save_checkpoint=save_checkpoint)
    path = tmp_path / layout.CHECKPOINTS / "key.ckpt"
    checkpoints.PopulationCheckpoint(path, every_s=3600).on_train_epoch_end(trainer, None)
    assert not saved and not path.exists()
    every_epoch = checkpoints.PopulationCheckpoint(path, every_s=0)
    every_epoch.on_train_epoch_end(trainer, None)
    every_epoch.on_train_epoch_end(trainer, None)
    assert len(saved) == 2 and saved[0] != path and path.read_bytes() == b"checkpoint"
    assert [p.name for p in path.parent.iterdir()] == ["key.ckpt"]  # no temporary file left


def test_an_unreadable_checkpoint_is_removed_and_the_population_trains_from_the_start(make_cfg, tmp_path, caplog):
    cfg = make_cfg("checkpoint_every_s=0")
    path = path_of([tmp_path / "job"], [plain(cfg)])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    (result,) = run([cfg], [tmp_path / "job"])
    assert result.status == "ok" and result.resumed_epochs == 0 and len(result.history["test_acc"]) == 2
    assert "damaged" in caplog.text and not path.parent.exists()


def test_a_checkpoint_the_storage_cannot_read_is_kept_and_its_population_stops_with_one_line(
    make_cfg, tmp_path, monkeypatch
):
    cfg = make_cfg("checkpoint_every_s=0")
    path = path_of([tmp_path / "job"], [plain(cfg)])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"a checkpoint the disk fails to read back")

    def read_error(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoints.torch, "load", read_error)
    (result,) = run([cfg], [tmp_path / "job"])
    assert result.status == "failed" and "\n" not in result.error
    assert result.error == (
        f"CheckpointUnreadable: checkpoint {path} could not be read (Input/output error); it is kept: run the same "
        "command again once the storage reads it"
    )
    assert path.read_bytes() == b"a checkpoint the disk fails to read back"  # not a byte lost
