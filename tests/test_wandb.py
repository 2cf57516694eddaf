"""Weights & Biases logging for real, offline (no account, no network)."""

import pytest

from sac.trainer import Trainer

wandb = pytest.importorskip("wandb")
pytestmark = pytest.mark.slow


def test_offline_wandb_run_records_config_and_metrics(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
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
        "wandb.mode=offline",
        "wandb.project=sac-test",
        "wandb.tags=[ci]",
    )
    Trainer(cfg, tmp_path).train()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    files = {p.name for p in run.rglob("*") if p.is_file()}
    assert any(name.endswith(".wandb") for name in files)  # the run's event log
    summary = next(run.rglob("wandb-summary.json")).read_text()
    assert "eval/return_mean" in summary and "losses/critic" in summary
    config = next(run.rglob("config.yaml")).read_text()
    assert "Pendulum-v1" in config
