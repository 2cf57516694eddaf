"""Weights & Biases logging for real, offline (no account, no network)."""

import pytest

from sac.checkpoint import load_checkpoint
from sac.errors import SACError
from sac.train import train
from sac.trainer import Trainer

wandb = pytest.importorskip("wandb")
pytestmark = pytest.mark.slow

TINY = [
    "agent.warmup_steps=100",
    "eval_episodes=1",
    "log_every=100",
    "device=cpu",
    "agent.batch_size=32",
    "agent.hidden_sizes=[16]",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # as in the README; wandb.mode left unset


def _record_log(run_dir) -> bytes:
    """The bytes of an offline run's record log, what `wandb sync` uploads: protobuf records,
    whose keys and strings are stored as plain UTF-8."""
    (log,) = run_dir.glob("run-*.wandb")
    return log.read_bytes()


def test_offline_wandb_run_records_config_metrics_and_eval_videos(make_cfg, tmp_path):
    cfg = make_cfg(
        *TINY,
        "total_steps=300",
        "eval_every=300",
        "checkpoint_every=0",
        "eval_video=true",
        "logger=wandb",
        "wandb.project=sac-test",
        "wandb.tags=[ci]",
    )
    Trainer(cfg, tmp_path).train()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    data = _record_log(run)
    for key in (b"eval/return_mean", b"losses/critic", b"train/episode_return", b"perf/sps"):
        assert key in data, key
    assert b"global_step" in data  # the env step, the x axis of every metric
    assert b"Pendulum-v1" in data and b"sac-test" in data  # the config and the project
    assert (tmp_path / "videos" / "eval_step300.mp4").stat().st_size > 10_000
    (video,) = (run / "files" / "media" / "videos" / "eval").glob("video_*.mp4")
    assert video.stat().st_size > 10_000  # the eval video, handed to W&B


def test_wandb_enabled_is_an_alias(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "total_steps=100", "eval_every=0", "wandb.enabled=true")
    Trainer(cfg, tmp_path).train()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert b"perf/sps" in _record_log(run)


def _run_id(run_dir):
    """The id of an offline run directory's record log, run-<id>.wandb. (The directory's name
    ends in -<id>, plus a -1 when two segments of a run start in the same second.)"""
    (record,) = run_dir.glob("run-*.wandb")
    return record.stem.removeprefix("run-")


def test_resume_continues_the_same_wandb_run(make_cfg, tmp_path):
    """Train to 300 with a checkpoint at 200, resume from it to 600: the checkpoint holds the
    W&B run id and the resumed process logs to that run; TensorBoard hides the events of steps
    after the checkpoint that the first process logged (they are logged again)."""
    pytest.importorskip("tensorboard")
    first = [*TINY, "total_steps=300", "eval_every=0", "checkpoint_every=200"]
    first += ["keep_checkpoints=0", "logger=[tensorboard,wandb]"]
    train(make_cfg(*first), tmp_path, first)
    (run1,) = (tmp_path / "wandb").glob("offline-run-*")
    run_id = _run_id(run1)
    ckpt = tmp_path / "checkpoints" / "step_0000000200.pt"
    assert load_checkpoint(ckpt)["loggers"] == {"wandb_run_id": run_id}

    # W&B that cannot start is one line, and the run directory is left as it was
    csv_before = (tmp_path / "metrics.csv").read_bytes()
    bad = ["total_steps=600", f"resume={ckpt}", "wandb.mode=nonsense"]
    with pytest.raises(SACError, match=r"^W&B could not start \(ValidationError: .*mode") as e:
        train(make_cfg(*first, *bad), tmp_path, bad)
    assert "\n" not in str(e.value)
    assert (tmp_path / "metrics.csv").read_bytes() == csv_before

    resume = ["total_steps=600", f"resume={ckpt}"]
    summary = train(make_cfg(*first, *resume), tmp_path, resume)
    assert summary["steps"] == 600
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(_run_id(r) == run_id for r in runs)
    assert b"perf/sps" in _record_log(runs[1])
    assert load_checkpoint(tmp_path)["loggers"] == {"wandb_run_id": run_id}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("perf/sps")] == [100, 200, 300, 400, 500, 600]
