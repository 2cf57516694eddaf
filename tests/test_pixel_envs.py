"""Envs observed from pixels (env.pixels): rendered frames, stacked channels-first, headless."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

import sac.envs
from sac.config import validated
from sac.envs import (
    EnvRunner,
    PixelSpec,
    action_bounds,
    goal_spec,
    make_env,
    make_vector_env,
    obs_shape,
    pixel_spec,
    resize_frame,
    space_dims,
)
from sac.errors import SACError

CONF = Path(__file__).resolve().parent.parent / "conf"
dmc = pytest.mark.skipif(
    importlib.util.find_spec("shimmy") is None,
    reason="the dmc extra (shimmy[dm-control]) is not installed",
)
# (env id, camera): Pendulum-v1 renders 500 x 500 (resized); the others render at the size asked.
ENVS = [
    ("Pendulum-v1", None),
    ("InvertedPendulum-v5", None),
    pytest.param("dm_control/cartpole-swingup-v0", 0, marks=dmc),
]
PIXEL_PRESETS = {  # PlaNet's benchmark with its action repeats, as DrQ ran it
    "dmc_cartpole_swingup_pixels": ("dm_control/cartpole-swingup-v0", 8),
    "dmc_finger_spin_pixels": ("dm_control/finger-spin-v0", 2),
    "dmc_walker_walk_pixels": ("dm_control/walker-walk-v0", 2),
    "dmc_cheetah_run_pixels": ("dm_control/cheetah-run-v0", 4),
    "dmc_reacher_easy_pixels": ("dm_control/reacher-easy-v0", 4),
    "dmc_ball_in_cup_catch_pixels": ("dm_control/ball_in_cup-catch-v0", 4),
}


def frames(obs: np.ndarray) -> list[np.ndarray]:
    """A stacked observation (3k, H, W) as its k frames (3, H, W), oldest first."""
    return [obs[i : i + 3] for i in range(0, len(obs), 3)]


def current_render(env: gym.Env) -> np.ndarray:
    """What the env shows now, channels-first, as the observation has it."""
    return env.render().transpose(2, 0, 1)


@pytest.mark.parametrize(("env_id", "camera"), ENVS)
def test_an_env_from_pixels_observes_its_stacked_frames(monkeypatch, env_id, camera):
    if env_id != "Pendulum-v1":  # MuJoCo and DMC render at the size asked: nothing to resize
        monkeypatch.setattr(sac.envs, "resize_frame", None)
    env = make_env(env_id, pixels=PixelSpec(size=16, frame_stack=3, camera_id=camera))
    try:
        space = gym.spaces.Box(0, 255, (9, 16, 16), np.uint8)
        assert env.observation_space == space
        assert obs_shape(env) == (9, 16, 16) and space_dims(env) == (9 * 16 * 16, 1)
        assert (action_bounds(env)[0] < 0).all()  # RescaleAction stays outermost
        assert goal_spec(env) is None  # an image, never flattened
        obs, _ = env.reset(seed=0)
        assert obs.dtype == np.uint8 and obs in space and obs.std() > 0  # not a blank frame
        # the reset padding repeats the first frame; the newest frame is the current render
        first = current_render(env)
        for frame in frames(obs):
            np.testing.assert_array_equal(frame, first)
        seen = [first] * 3
        for _ in range(4):
            obs, *_ = env.step(np.ones(1, dtype=np.float32))
            seen.append(current_render(env))
            # oldest first: the last three renders, in order
            np.testing.assert_array_equal(np.concatenate(seen[-3:]), obs)
        assert not np.array_equal(seen[0], seen[-1])  # the frames show the env moving
    finally:
        env.close()


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


@pytest.mark.parametrize(("env_id", "camera"), ENVS[:2])
def test_a_held_action_is_rendered_once_per_agent_step(monkeypatch, env_id, camera):
    env = make_env(env_id, action_repeat=4, pixels=PixelSpec(size=16, camera_id=camera))
    renders = count_calls(monkeypatch, env.unwrapped, "render")
    steps = count_calls(monkeypatch, env.unwrapped, "step")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros(1, dtype=np.float32))
    assert (len(steps), len(renders)) == (20, 1 + 5)  # the reset's frame, then one per step
    env.close()


def test_one_frame_is_the_state_seen_through_pixels():
    env = make_env("Pendulum-v1", pixels=PixelSpec(size=16, frame_stack=1))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 16, 16)
    env.close()


def test_resize_averages_the_area_each_pixel_covers():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[:2, :3] = 200  # the top-left quarter
    frame[2:, 3:, 1] = 100  # the bottom-right quarter, green
    small = resize_frame(frame, 2)
    assert small.dtype == np.uint8 and small.shape == (2, 2, 3)
    np.testing.assert_array_equal(small[:, :, 0], [[200, 0], [0, 0]])
    np.testing.assert_array_equal(small[:, :, 1], [[200, 0], [0, 100]])
    # a pixel split between two output pixels counts in both, by its share
    row = np.array([[[0], [90], [180]]], np.uint8).repeat(3, axis=2)  # 1 x 3
    np.testing.assert_array_equal(resize_frame(row.repeat(2, axis=0), 2)[0, :, 0], [30, 150])
    np.testing.assert_array_equal(resize_frame(np.full((7, 5, 3), 37, np.uint8), 3), 37)


@pytest.mark.filterwarnings("ignore:.*RGB-array rendering should return a numpy array")
@pytest.mark.parametrize(
    ("cls", "env_id"), [(PendulumEnv, "Pendulum-v1"), (MujocoEnv, "Hopper-v5")]
)
def test_a_machine_that_cannot_render_fails_at_construction_with_the_fix(monkeypatch, cls, env_id):
    def broken(self):
        raise RuntimeError("no display, no EGL")

    monkeypatch.setattr(cls, "render", broken)
    with pytest.raises(SACError, match=r"RuntimeError: no display.*MUJOCO_GL=egl.*libegl1 libgl1"):
        make_env(env_id, pixels=PixelSpec(size=16))
    monkeypatch.setattr(cls, "render", lambda self: None)
    with pytest.raises(SACError, match=r"rendered None, not an RGB frame.*MUJOCO_GL=egl"):
        make_env(env_id, pixels=PixelSpec(size=16))


@pytest.mark.slow
def test_a_wrong_mujoco_gl_is_one_line():
    code = (
        "from sac.envs import PixelSpec, make_env\n"
        "from sac.errors import SACError\n"
        "try:\n"
        "    make_env('InvertedPendulum-v5', pixels=PixelSpec(size=16))\n"
        "except SACError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "MUJOCO_GL": "no_such_backend"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "env 'InvertedPendulum-v5': MuJoCo cannot load its OpenGL backend for "
        "MUJOCO_GL=no_such_backend (RuntimeError: invalid value"
    )
    assert "set MUJOCO_GL=egl" in proc.stdout and proc.stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("env_id", "kwargs", "spec", "match"),
    [
        ("CountEnv-v0", {}, {}, r"cannot render rgb_array frames .*env\.pixels=true needs"),
        ("Pendulum-v1", {}, {"camera_id": 0}, r"has none to pick; set env\.camera_id=null"),
        ("InvertedPendulum-v5", {}, {"camera_id": 0}, r"has no fixed camera; set env\.camera_id"),
        ("HalfCheetah-v5", {}, {"camera_id": 3}, r"fixed camera ids 0 to 0; set env\.camera_id"),
        ("InvertedPendulum-v5", {"width": 64}, {}, r"env\.kwargs sets width, which env\.pixels"),
        ("Pendulum-v1", {"render_mode": "human"}, {}, r"render_mode 'human' cannot be used"),
        ("NoSuchEnv-v0", {}, {}, r"unknown Gymnasium env id"),
    ],
)
def test_bad_pixel_settings_are_refused(env_id, kwargs, spec, match):
    with pytest.raises(SACError, match=match):
        make_env(env_id, kwargs, pixels=PixelSpec(size=16, **spec))


@pytest.mark.parametrize(
    ("override", "spec", "match"),
    [
        ("env.image_size=8", {"size": 8}, r"env\.image_size must be in \[16, 512\], got 8"),
        ("env.image_size=600", {"size": 600}, r"env\.image_size must be in \[16, 512\], got 600"),
        ("env.frame_stack=0", {"frame_stack": 0}, r"env\.frame_stack must be >= 1, got 0"),
        ("env.camera_id=-2", {"camera_id": -2}, r"env\.camera_id must be null, -1 \(the free"),
    ],
)
def test_bad_pixel_config_is_one_line(make_cfg, override, spec, match):
    with pytest.raises(SACError, match=match):
        validated(make_cfg("env.pixels=true", override))
    with pytest.raises(SACError, match=match):  # make_env's callers get the same checks
        PixelSpec(**spec)


def test_pixel_spec_reads_the_env_config(make_cfg):
    assert pixel_spec(make_cfg().env) is None
    cfg = make_cfg("env.pixels=true", "env.image_size=64", "env.frame_stack=2", "env.camera_id=1")
    assert pixel_spec(cfg.env) == PixelSpec(size=64, frame_stack=2, camera_id=1)
    assert pixel_spec(validated(cfg).env) == PixelSpec(size=64, frame_stack=2, camera_id=1)


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_the_runner_keeps_frames_uint8_across_a_vector_env(vectorization):
    envs = make_vector_env(
        "Pendulum-v1", None, 2, vectorization, action_repeat=2, pixels=PixelSpec(16, 2)
    )
    assert obs_shape(envs) == (6, 16, 16) and space_dims(envs) == (6 * 16 * 16, 1)
    runner = EnvRunner(envs, seed=0)
    assert runner.obs.dtype == np.uint8 and runner.obs.shape == (2, 6, 16, 16)
    for _ in range(3):
        tr = runner.step(np.zeros((2, 1), dtype=np.float32))
        assert tr.obs.dtype == tr.next_obs.dtype == runner.obs.dtype == np.uint8
        # a transition's next observation shifts its stack by one frame
        np.testing.assert_array_equal(tr.next_obs[:, :3], tr.obs[:, 3:])
        assert tr.reward.dtype == np.float32
    assert not np.array_equal(runner.obs[0], runner.obs[1])  # two episode seeds, two pendulums
    runner.close()
    states = EnvRunner(make_vector_env("CountEnv-v0", None, 2), seed=0)
    assert states.obs.dtype == np.float32  # other observations stay float32
    states.close()


def test_the_pixel_presets_are_planets_benchmark():
    assert sorted(p.stem for p in (CONF / "env").glob("*_pixels.yaml")) == sorted(PIXEL_PRESETS)


@dmc
@pytest.mark.parametrize("preset", sorted(PIXEL_PRESETS))
def test_every_pixel_preset_composes_and_its_env_renders(make_cfg, preset):
    cfg = make_cfg(f"env={preset}")
    validated(cfg)
    env_id, repeat = PIXEL_PRESETS[preset]
    assert (cfg.env.id, cfg.env.action_repeat) == (env_id, repeat)
    assert pixel_spec(cfg.env) == PixelSpec(size=84, frame_stack=3, camera_id=0)
    assert cfg.agent.warmup_steps == 1000 * repeat  # DrQ's 1000 random decisions, in frames
    assert cfg.total_steps == 500_000
    small = make_cfg(f"env={preset}", "env.image_size=16")  # camera 0 exists; fast to render
    env = make_env(env_id, small.env.kwargs, action_repeat=repeat, pixels=pixel_spec(small.env))
    try:
        obs, _ = env.reset(seed=1)
        assert obs.shape == (9, 16, 16) and obs.dtype == np.uint8 and obs.std() > 0
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert 0.0 <= reward <= repeat and not (terminated or truncated)
    finally:
        env.close()
