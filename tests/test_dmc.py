"""The DeepMind Control Suite through Shimmy, and env.action_repeat (steps counted in frames)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

import sac.envs
from sac.config import validated
from sac.envs import action_bounds, make_env
from sac.errors import SACError
from sac.seeding import env_seed
from sac.trainer import Trainer

pytest.importorskip("shimmy", reason="the dmc extra (shimmy[dm-control]) is not installed")

CONF = Path(__file__).resolve().parent.parent / "conf"
# from states; the pixel presets (dmc_*_pixels) are tested in test_pixel_envs.py
DMC_PRESETS = sorted(
    p.stem for p in (CONF / "env").glob("dmc_*.yaml") if not p.stem.endswith("_pixels")
)


def test_the_standard_tasks_have_presets():
    assert DMC_PRESETS == [
        "dmc_ball_in_cup_catch",
        "dmc_cartpole_swingup",
        "dmc_cheetah_run",
        "dmc_finger_spin",
        "dmc_hopper_hop",
        "dmc_humanoid_walk",
        "dmc_reacher_easy",
        "dmc_walker_walk",
    ]


@pytest.mark.parametrize("preset", DMC_PRESETS)
def test_every_dmc_preset_composes_and_its_env_runs(make_cfg, preset):
    cfg = make_cfg(f"experiment={preset}", "agent=sac_dmc")
    validated(cfg)
    assert cfg.env.id.startswith("dm_control/") and cfg.agent.hidden_sizes == [1024, 1024]
    assert (cfg.eval_every, cfg.eval_episodes, cfg.agent.batch_size) == (10_000, 10, 1024)
    env = make_env(cfg.env.id, cfg.env.kwargs, action_repeat=cfg.env.action_repeat)
    try:
        obs, _ = env.reset(seed=env_seed(0, 0, 0))  # 32-bit seeds: dm_control's RandomState
        low, high = action_bounds(env)
        assert obs.ndim == 1 and np.isfinite(obs).all()
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert 0.0 <= reward <= 1.0 and not terminated and not truncated
        assert (low == -1).all() and (high == 1).all()
    finally:
        env.close()


def test_an_episode_is_1000_frames_whatever_the_action_repeat():
    for repeat, decisions in ((1, 1000), (8, 125)):
        env = make_env("dm_control/cartpole-swingup-v0", action_repeat=repeat)
        env.reset(seed=1)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
            steps += 1
            done = terminated or truncated
        assert steps == decisions and truncated and not terminated  # a time limit: bootstrap
        env.close()


def test_action_repeat_holds_the_action_and_sums_rewards():
    env = make_env("CountEnv-v0", {"length": 5}, action_repeat=3)
    env.reset(seed=0)
    obs, reward, terminated, _, _ = env.step(np.zeros(1, dtype=np.float32))
    assert (obs[0], reward, terminated) == (3, 3.0, False)
    obs, reward, terminated, _, _ = env.step(np.zeros(1, dtype=np.float32))
    assert (obs[0], reward, terminated) == (5, 2.0, True)  # stopped where the episode ended


def test_step_counts_are_frames(make_cfg, tmp_path):
    cfg = make_cfg(
        "env.id=CountEnv-v0",
        "+env.kwargs.length=100",
        "env.action_repeat=4",
        "total_steps=200",
        "agent.warmup_steps=40",
        "agent.hidden_sizes=[16,16]",
        "agent.batch_size=8",
        "eval_every=0",
        "eval_episodes=1",
        "device=cpu",
    )
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert summary["steps"] == 200
    assert len(trainer.buffer) == 50  # transitions: one per 4 frames
    assert trainer.agent.num_updates == 40  # updates_per_step per transition after the warm-up
    obs = trainer.buffer.obs[:50, 0]
    torch.testing.assert_close(trainer.buffer.next_obs[:50, 0] - obs, torch.full((50,), 4.0))


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setattr(sac.envs, "ENV_PACKAGES", (("dm_control/", "no_such_module_x", "dmc"),))
    with pytest.raises(SACError, match=r"needs the dmc extra .*pip install 'sac\[dmc\]'"):
        make_env("dm_control/not-registered-v0")


def test_bad_action_repeat_is_refused(make_cfg):
    with pytest.raises(SACError, match=r"env\.action_repeat must be >= 1"):
        validated(make_cfg("env.action_repeat=0"))


@pytest.mark.slow
def test_a_dmc_run_through_the_cli_trains_into_a_run_directory_without_slashes(tmp_path):
    proc = run_cli(
        [
            "sac-train",
            "env=dmc_cartpole_swingup",
            "total_steps=600",
            "agent.warmup_steps=300",
            "agent.hidden_sizes=[32,32]",
            "agent.batch_size=32",
            "eval_episodes=1",
            "device=cpu",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("dm_control-cartpole-swingup-v0_seed0_")
    assert (run_dir / "checkpoints" / "step_0000000600.pt").is_file()
