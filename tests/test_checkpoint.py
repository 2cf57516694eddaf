"""Checkpoint files: atomic save, weights_only load, clear refusals."""

import os

import pytest
import torch

from sac.agent import SAC
from sac.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    step_path,
)
from sac.config import AgentConfig
from sac.errors import SACError


def _state(step: int) -> dict:
    """The smallest payload shaped as run_state.build_state writes it."""
    agent = SAC(3, 1, AgentConfig(hidden_sizes=[4]))
    with torch.no_grad():
        agent.actor.net[0].bias.copy_(torch.arange(4.0))
    return {
        "config": {"env": {"id": "Pendulum-v1"}, "wandb": {"tags": ["a"], "entity": None}},
        "counters": {"env_steps": step, "updates": 0, "episodes": 0, "last_eval": None},
        "spaces": {"obs_dim": 3, "act_dim": 1},
        "agent": agent.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
    }


def test_round_trip_and_last_link(tmp_path):
    for step in (10, 20):
        save_checkpoint(_state(step), step_path(tmp_path, step))
    ckpt_dir = tmp_path / "checkpoints"
    names = sorted(p.name for p in ckpt_dir.iterdir())
    assert names == ["last.pt", "step_0000000010.pt", "step_0000000020.pt"]  # no temp files
    state = load_checkpoint(ckpt_dir / "step_0000000010.pt")
    assert state["format_version"] == FORMAT_VERSION and state["counters"]["env_steps"] == 10
    torch.testing.assert_close(state["agent"]["actor"]["net.0.bias"], torch.arange(4.0))
    assert state["config"]["wandb"]["tags"] == ["a"]
    assert load_checkpoint(ckpt_dir / "last.pt")["counters"]["env_steps"] == 20
    # plain torch.load with weights_only=True reads it: no pickled classes inside
    torch.load(ckpt_dir / "last.pt", weights_only=True)


def test_run_directory_resolves_to_latest_checkpoint(tmp_path):
    for step in (5, 100, 20):
        save_checkpoint(_state(step), step_path(tmp_path, step))
    assert resolve_checkpoint(tmp_path).name == "step_0000000100.pt"
    assert resolve_checkpoint(tmp_path / "checkpoints").name == "step_0000000100.pt"
    assert load_checkpoint(tmp_path)["counters"]["env_steps"] == 100


def test_failed_write_leaves_previous_checkpoint_and_no_temp(tmp_path, monkeypatch):
    path = step_path(tmp_path, 1)
    save_checkpoint(_state(1), path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(2), step_path(tmp_path, 2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", path.name]
    assert load_checkpoint(tmp_path)["counters"]["env_steps"] == 1


@pytest.mark.parametrize("content", [b"hello, not a checkpoint\n", os.urandom(4096), b""])
def test_non_checkpoint_files_are_refused(tmp_path, content):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(SACError, match="not a readable sac checkpoint"):
        load_checkpoint(p)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = step_path(tmp_path, 1)
    save_checkpoint(_state(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SACError, match="not a readable sac checkpoint"):
        load_checkpoint(path)


def test_torch_file_without_format_version_is_refused(tmp_path):
    p = tmp_path / "weights.pt"
    torch.save({"actor": torch.zeros(2)}, p)
    with pytest.raises(SACError, match="not a sac checkpoint"):
        load_checkpoint(p)


def test_other_format_version_is_refused(tmp_path):
    p = tmp_path / "future.pt"
    torch.save({"format_version": FORMAT_VERSION + 1}, p)
    with pytest.raises(SACError, match="format version"):
        load_checkpoint(p)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "agent": _Exploit(marker)}, p)
    with pytest.raises(SACError, match="not a readable sac checkpoint"):
        load_checkpoint(p)
    assert not marker.exists()


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(SACError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(SACError, match="no checkpoint found"):
        load_checkpoint(tmp_path)
