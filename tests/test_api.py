"""The Python API: `import sac` stays light; sac.learn trains as sac-train does; load_policy
maps raw observations to env actions as sac-eval's agent does, for old checkpoints too."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import sac
from sac.checkpoint import load_checkpoint, save_checkpoint, step_path
from sac.config import agent_config
from sac.envs import make_env
from sac.errors import SACError

TINY = [
    "env=pendulum",
    "device=cpu",
    "total_steps=300",
    "agent.warmup_steps=100",
    "agent.batch_size=32",
    "agent.buffer_size=1000",
    "agent.hidden_sizes=[16,16]",
    "eval_every=0",
    "eval_episodes=1",
    "checkpoint_every=0",
    "log_every=100",
]


@pytest.mark.slow
def test_import_sac_is_light_and_exports_the_api():
    code = (
        "import sys, sac; assert 'torch' not in sys.modules and 'hydra' not in sys.modules; "
        "from sac import SAC, AgentConfig, Batch, Policy, learn, load_policy; "
        "import sac.train; assert callable(sac.learn)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        sac.no_such_name  # noqa: B018


def test_agent_config_checks_its_values_from_python():
    with pytest.raises(SACError, match=r"agent.gamma must be in \[0, 1\]"):
        sac.AgentConfig(gamma=2.0)


@pytest.fixture
def checkpoint(make_cfg, tmp_path):
    """A Pendulum checkpoint with an untrained actor, as the trainer writes it."""
    cfg = make_cfg("agent.hidden_sizes=[16,16]")
    torch.manual_seed(0)
    agent = sac.SAC(3, 1, agent_config(cfg))
    state = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "counters": {"env_steps": 0, "updates": 0, "episodes": 0, "last_eval": None},
        "spaces": {"obs_dim": 3, "act_dim": 1, "action_low": [-2.0], "action_high": [2.0]},
        "agent": agent.state_dict(),
    }
    path = step_path(tmp_path / "run", 0)
    save_checkpoint(state, path)
    return path


def _env_actions(path, obs: np.ndarray) -> np.ndarray:
    """What sac-eval does with a batch of observations: its agent's deterministic actions,
    through make_env's RescaleAction to the env's own action space."""
    state = load_checkpoint(path)
    train_cfg = OmegaConf.create(state["config"])
    agent = sac.SAC(3, 1, agent_config(train_cfg))
    agent.load_state_dict(state["agent"], actor_only=True)
    env = make_env(train_cfg.env.id, train_cfg.env.kwargs)
    try:
        assert isinstance(env, gym.wrappers.RescaleAction)
        actions = agent.act(torch.as_tensor(obs), deterministic=True).numpy()
        return np.stack([env.action(a) for a in actions])
    finally:
        env.close()


def _observations(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 3.0, (n, 3)).astype(np.float32)


def test_load_policy_maps_single_and_batched_observations_to_env_actions(checkpoint):
    policy = sac.load_policy(checkpoint.parent.parent)  # a run directory: its latest
    obs = _observations(64)
    batch = policy(obs)
    assert batch.shape == (64, 1) and batch.dtype == np.float32
    assert (batch >= -2.0).all() and (batch <= 2.0).all()
    single = policy(obs[0])
    assert single.shape == (1,)
    np.testing.assert_allclose(single, batch[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(policy(obs), batch)  # deterministic by default
    np.testing.assert_allclose(batch, _env_actions(checkpoint, obs), rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    sampled = policy(obs, deterministic=False)
    assert not np.allclose(sampled, batch) and (np.abs(sampled) <= 2.0).all()


def test_load_policy_reads_bounds_from_the_env_for_checkpoints_without_them(checkpoint):
    state = load_checkpoint(checkpoint, mmap=False)
    del state["spaces"]["action_low"], state["spaces"]["action_high"]
    del state["format_version"]
    old = checkpoint.parent / "old.pt"
    save_checkpoint(state, old)
    obs = _observations(16)
    policy = sac.load_policy(old)
    np.testing.assert_array_equal(policy.action_low, [-2.0])
    np.testing.assert_array_equal(policy(obs), sac.load_policy(checkpoint)(obs))


def test_load_policy_refuses_bad_input(tmp_path, checkpoint):
    with pytest.raises(SACError, match="does not exist"):
        sac.load_policy(tmp_path / "nowhere")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SACError, match="not a readable sac checkpoint"):
        sac.load_policy(tmp_path / "junk.pt")
    with pytest.raises(SACError, match=r"takes \(3,\)"):
        sac.load_policy(checkpoint)(np.zeros(4, dtype=np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_load_policy_on_the_gpu_gives_the_cpu_actions(checkpoint):
    obs = _observations(32)
    gpu = sac.load_policy(checkpoint, device="cuda")
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu(obs), sac.load_policy(checkpoint)(obs), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_learn_trains_like_sac_train_and_its_policy_acts(tmp_path):
    summary = sac.learn(TINY, run_dir=tmp_path / "run")
    assert summary["steps"] == 300 and summary["interrupted_by"] is None
    assert summary["eval_return"] is not None
    state = load_checkpoint(summary["checkpoint"])
    assert state["spaces"]["action_low"] == [-2.0] and state["spaces"]["action_high"] == [2.0]
    assert (tmp_path / "run" / "config.yaml").is_file()
    policy = sac.load_policy(tmp_path / "run")
    obs = _observations(8)
    np.testing.assert_allclose(
        policy(obs), _env_actions(summary["checkpoint"], obs), rtol=1e-5, atol=1e-5
    )
    again = sac.learn([*TINY, "total_steps=400"], run_dir=tmp_path / "run")  # resume=auto
    assert again["steps"] == 400
