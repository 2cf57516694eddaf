"""Weights & Biases logging for real, offline (no account, no network)."""

import pytest

from sac.trainer import Trainer

wandb = pytest.importorskip("wandb")
pytestmark = pytest.mark.slow


def test_offline_wandb_run_records_config_and_metrics(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # as in the README; wandb.mode left unset
    cfg = make_cfg(
        "total_steps=300",
        "agent.warmup_steps=100",
        "eval_every=300",
        "eval_episodes=1",
        "checkpoint_every=0",
        "log_every=100",
        "device=cpu",
        "agent.batch_size=32",
        "agent.hidden_sizes=[16]",
        "wandb.enabled=true",
        "wandb.project=sac-test",
        "wandb.tags=[ci]",
    )
    Trainer(cfg, tmp_path).train()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (log,) = run.glob("run-*.wandb")  # the run's record log, what `wandb sync` uploads
    data = log.read_bytes()  # protobuf records: keys and strings are stored as plain UTF-8
    for key in (b"eval/return_mean", b"losses/critic", b"train/episode_return", b"perf/sps"):
        assert key in data, key
    assert b"Pendulum-v1" in data and b"sac-test" in data  # the config and the project
