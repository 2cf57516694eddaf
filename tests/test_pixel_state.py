"""Frames beside the state (env.pixels_state): the env observes a dict {"pixels": the uint8
frame stack, "state": the flat float32 state at the newest frame}; the state reaches actor and
critics after the image features (the encoder still trained by the critic loss only, the
random shift on the frames only); checkpoints, load_policy, sac-eval and sac-export take it."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import assert_encoder_trained_by_the_critic_loss_only, compile_with, run_cli
from hydra import compose, initialize_config_dir

from sac.agent import SAC
from sac.checkpoint import _payload_problem, check_spaces, load_checkpoint
from sac.compiled import make_updater
from sac.config import AgentConfig, config_dir, register_configs, validated
from sac.envs import (
    EnvRunner,
    PixelSpec,
    make_env,
    make_vector_env,
    obs_keys,
    obs_shape,
    state_dim,
)
from sac.errors import SACError
from sac.losses import PIXELS, STATE, Batch
from sac.policy import load_policy
from sac.train import train
from sac.trainer import Trainer

dmc = pytest.mark.skipif(
    importlib.util.find_spec("shimmy") is None,
    reason="the dmc extra (shimmy[dm-control]) is not installed",
)
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
SIZE, K = 16, 2
SPEC = PixelSpec(SIZE, K, state=True)
PIXEL_SHAPE, STATE_DIM, ACT = (3 * K, SIZE, SIZE), 3, 1  # Pendulum: (cos, sin, angular speed)
# Pendulum-v1 from 16x16 frames, 2 stacked, beside its state; 40-step episodes.
RUN = [
    "env.id=Pendulum-v1",
    "env.pixels=true",
    "env.pixels_state=true",
    f"env.image_size={SIZE}",
    f"env.frame_stack={K}",
    "+env.kwargs.max_episode_steps=40",
    "agent=drq",
    "agent.hidden_sizes=[32,32]",
    "agent.encoder_filters=8",
    "agent.encoder_features=16",
    "agent.batch_size=8",
    "agent.buffer_size=1000",
    "agent.warmup_steps=30",
    "total_steps=60",
    "eval_every=0",
    "eval_episodes=1",
    "device=cpu",
]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared machine of few cores, more make tiny updates far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny pixels_state run of 60 steps (one checkpoint, at its end)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = tmp_path_factory.mktemp("pixel_state_run")
        Trainer(_compose(*RUN), run_dir).train()
    finally:
        torch.set_num_threads(threads)
    return run_dir


# ----------------------------------------------------------------------------- env
@pytest.mark.parametrize(
    ("env_id", "camera", "dim"),
    [
        ("Pendulum-v1", None, STATE_DIM),
        # a Dict state (position, velocity), flattened as the state-only env flattens it
        pytest.param("dm_control/cartpole-swingup-v0", 0, 5, marks=dmc),
    ],
)
def test_the_env_observes_the_frames_and_the_newest_state_beside_them(env_id, camera, dim):
    env = make_env(env_id, pixels=PixelSpec(SIZE, K, camera, state=True))
    frames_only = make_env(env_id, pixels=PixelSpec(SIZE, K, camera))
    state_only = make_env(env_id)
    try:
        space = env.observation_space
        assert isinstance(space, gym.spaces.Dict) and list(space) == [PIXELS, STATE]
        assert space[PIXELS] == gym.spaces.Box(0, 255, PIXEL_SHAPE, np.uint8)
        assert space[STATE].shape == (dim,) and space[STATE].dtype == np.float32
        assert obs_shape(env) == PIXEL_SHAPE and state_dim(env) == dim
        assert state_dim(frames_only) == state_dim(state_only) == 0
        rng = np.random.default_rng(0)
        for seed in (0, 1):  # a reset in between: the stack restarts, the state is the new one
            obs, _ = env.reset(seed=seed)
            want_frames, _ = frames_only.reset(seed=seed)
            want_state, _ = state_only.reset(seed=seed)
            for _ in range(4):
                assert obs in space and obs[STATE].dtype == np.float32
                np.testing.assert_array_equal(obs[PIXELS], want_frames)
                # the state now, not a stack of them
                np.testing.assert_array_equal(obs[STATE], np.float32(want_state))
                action = rng.uniform(-1, 1, 1).astype(np.float32)
                obs, *_ = env.step(action)
                want_frames, *_ = frames_only.step(action)
                want_state, *_ = state_only.step(action)
            assert not np.array_equal(obs[PIXELS][:3], obs[PIXELS][3:])  # the frames move
    finally:
        for e in (env, frames_only, state_only):
            e.close()


@pytest.mark.slow
@dmc
def test_frames_beside_a_dict_state_take_the_dicts_own_keys_in_load_policy_and_sac_export(
    tmp_path,
):
    """DMC's Dict state is flattened beside the frames (position, then velocity): the checkpoint
    records the frames and the Dict's own keys, and load_policy and sac-export take the frames
    beside those keys; load_policy still takes make_env's {pixels, state}."""
    env = make_env("dm_control/cartpole-swingup-v0", pixels=PixelSpec(SIZE, K, 0, state=True))
    keys = [(PIXELS, (3 * K, SIZE, SIZE)), ("position", (3,)), ("velocity", (2,))]
    assert obs_keys(env) == keys
    seen = [env.reset(seed=seed)[0] for seed in range(4)]
    env.close()
    cfg = _compose(
        *[o for o in RUN if not o.startswith(("env.id", "+env.kwargs"))],
        "env.id=dm_control/cartpole-swingup-v0",
        "env.camera_id=0",
        "env.action_repeat=8",
        "total_steps=400",
        "agent.warmup_steps=240",
    )
    summary = Trainer(cfg, tmp_path).train()
    spaces = load_checkpoint(Path(summary["checkpoint"]))["spaces"]
    assert spaces["state_dim"] == 5
    assert spaces["obs_keys"] == [[k, list(shape)] for k, shape in keys]

    policy = load_policy(tmp_path)
    own = [{PIXELS: o[PIXELS], "position": o[STATE][:3], "velocity": o[STATE][3:]} for o in seen]
    want = np.stack([policy(o) for o in seen])
    assert want.shape == (4, 1) and np.abs(want - want[0]).max() > 0  # it reads the obs
    np.testing.assert_allclose(np.stack([policy(o) for o in own]), want, rtol=0, atol=1e-6)
    batch = {k: np.stack([o[k] for o in own]) for k, _ in keys}
    np.testing.assert_allclose(policy(batch), want, rtol=0, atol=1e-6)
    with pytest.raises(SACError, match=r"\(or \{pixels: \(6, 16, 16\), position: \(3,\), velo"):
        policy({PIXELS: own[0][PIXELS], "position": own[0]["position"]})

    from sac.export import export

    fmt = "all" if HAS_ONNX else "pt2"
    out = tmp_path / "out"
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        export_cfg = compose(
            "export", overrides=[f"checkpoint={tmp_path}", f"output_dir={out}", f"format={fmt}"]
        )
    info = export(export_cfg)
    assert [(i["name"], i["dtype"]) for i in info["inputs"]] == [
        (PIXELS, "uint8"),
        ("position", "float32"),
        ("velocity", "float32"),
    ]
    program = torch.export.load(out / "policy.pt2").module()
    pt2 = program(*(torch.as_tensor(batch[k]) for k, _ in keys)).numpy()
    np.testing.assert_allclose(pt2, want, rtol=0, atol=1e-5)
    if HAS_ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "policy.onnx"))
        np.testing.assert_allclose(session.run(["action"], batch)[0], want, rtol=0, atol=1e-5)


def test_the_runner_keeps_the_dict_with_uint8_frames_and_float32_states():
    envs = make_vector_env("Pendulum-v1", {"max_episode_steps": 3}, 2, "sync", pixels=SPEC)
    assert obs_shape(envs) == PIXEL_SHAPE and state_dim(envs) == STATE_DIM
    runner = EnvRunner(envs, seed=0)

    def check(obs):
        assert set(obs) == {PIXELS, STATE}
        assert obs[PIXELS].dtype == np.uint8 and obs[PIXELS].shape == (2, *PIXEL_SHAPE)
        assert obs[STATE].dtype == np.float32 and obs[STATE].shape == (2, STATE_DIM)

    check(runner.obs)
    assert not np.array_equal(runner.obs[STATE][0], runner.obs[STATE][1])  # two seeds
    for step in range(4):  # across the episodes' ends (3 steps) and the runner's resets
        tr = runner.step(np.full((2, 1), 0.5, dtype=np.float32))
        for obs in (tr.obs, tr.next_obs, runner.obs):
            check(obs)
        np.testing.assert_array_equal(tr.next_obs[PIXELS][:, :3], tr.obs[PIXELS][:, 3:])
        assert not np.array_equal(tr.next_obs[STATE], tr.obs[STATE])
        assert tr.truncated.all() == (step == 2)
    runner.close()


@pytest.mark.slow
def test_pixels_state_without_pixels_is_refused_in_one_line(make_cfg, tmp_path):
    with pytest.raises(SACError, match=r"^env\.pixels_state=true .* set env\.pixels=true too"):
        validated(make_cfg("env.pixels_state=true"))
    validated(make_cfg("env.pixels=true", "env.pixels_state=true"))
    done = run_cli(["sac-train", "env.pixels_state=true", f"hydra.run.dir={tmp_path}"], tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "env.pixels_state=true" in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr


# ----------------------------------------------------------------------------- agent
def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    cfg = {"hidden_sizes": [32, 32], "encoder_filters": 8, "encoder_features": 16, **overrides}
    return SAC(PIXEL_SHAPE, ACT, AgentConfig(**cfg), state_dim=STATE_DIM)


def make_obs(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        PIXELS: torch.randint(0, 256, (n, *PIXEL_SHAPE), generator=g, dtype=torch.uint8),
        STATE: torch.randn(n, STATE_DIM, generator=g),
    }


def make_batch(n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        make_obs(n, g),
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        make_obs(n, g),
        (torch.rand(n, generator=g) < 0.2).float(),
    )


def test_the_state_reaches_the_actor_and_the_critics():
    agent = make_agent()
    obs = make_batch(8).obs
    other = {PIXELS: obs[PIXELS], STATE: obs[STATE] + 1.0}  # the same frames, another state
    # the actor's input: the encoder's features, then the state as it is
    features = agent.actor_input(obs)
    assert features.shape == (8, agent.encoder.out_dim + STATE_DIM)
    torch.testing.assert_close(features[:, -STATE_DIM:], obs[STATE], rtol=0, atol=0)
    torch.testing.assert_close(features[:, :-STATE_DIM], agent.encoder(obs[PIXELS]).detach())
    action = agent.act(obs, deterministic=True)
    assert action.shape == (8, ACT)
    assert not torch.allclose(agent.act(other, deterministic=True), action)
    with torch.no_grad():
        q = agent.critic(obs, action)
        assert q.shape == (2, 8)
        assert not torch.allclose(agent.critic(other, action), q)
        assert not torch.allclose(
            agent.critic_target(other, action), agent.critic_target(obs, action)
        )


def test_the_encoder_is_trained_by_the_critic_loss_and_not_by_the_actor_loss():
    assert_encoder_trained_by_the_critic_loss_only(make_agent(), make_batch())


def test_the_random_shift_moves_the_frames_and_leaves_the_states_alone():
    agent = make_agent(augment_pad=2)
    batch = make_batch()
    out = agent.augmented(batch)
    for before, after in ((batch.obs, out.obs), (batch.next_obs, out.next_obs)):
        assert set(after) == {PIXELS, STATE}
        assert after[PIXELS].shape == before[PIXELS].shape and after[PIXELS].dtype == torch.uint8
        assert not torch.equal(after[PIXELS], before[PIXELS])
        torch.testing.assert_close(after[STATE], before[STATE], rtol=0, atol=0)
    assert out.action is batch.action and out.reward is batch.reward


@pytest.mark.slow
def test_the_compiled_one_graph_update_equals_eager_for_dict_batches(monkeypatch):
    """Traced only (backend "eager", fullgraph: a graph break raises), the one graph of
    update and of update_many (K dict batches stacked) gives the eager updates' numbers."""
    compiled = compile_with(monkeypatch, "eager")
    options = {"target_update_interval": 2, "actor_update_interval": 2}
    eager, fast = make_agent(**options), make_agent(**options)
    updater = make_updater(fast, compile=True)
    batches = [make_batch(seed=i) for i in range(3)]
    torch.manual_seed(100)
    want = eager.update(batches[0])
    torch.manual_seed(100)
    got = updater.update(batches[0])
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
    stacked = Batch(  # (K, B, ...): the obs dicts' values stacked too
        *(
            {k: torch.stack([b[i][k] for b in batches[1:]]) for k in (PIXELS, STATE)}
            if i in (0, 3)
            else torch.stack([b[i] for b in batches[1:]])
            for i in range(5)
        )
    )
    torch.manual_seed(7)
    got = updater.update_many(stacked)
    torch.manual_seed(7)
    want = [eager.update(b) for b in batches[1:]]
    for name in want[0]:
        torch.testing.assert_close(
            got[name], torch.stack([w[name] for w in want]), rtol=1e-5, atol=1e-6
        )
    assert updater.compiled and updater.one_graph and compiled == ["_update", "_update_many"]
    assert fast.num_updates == eager.num_updates == 3
    for p, q in zip(fast.critic.parameters(), eager.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for p, q in zip(fast.actor.parameters(), eager.actor.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_records_the_state_dim_and_refuses_an_env_without_it(run_dir, make_cfg):
    state = load_checkpoint(run_dir, mmap=False)
    assert state["spaces"]["state_dim"] == STATE_DIM
    assert state["spaces"]["obs_shape"] == list(PIXEL_SHAPE)
    assert state["counters"]["env_steps"] == 60
    # one state per stored frame: 60 steps' and 2 episodes' reset frames
    states = state["buffer"]["state"]
    assert states.dtype == torch.float32 and states.shape == (62, STATE_DIM)
    assert _payload_problem(state) is None
    check_spaces(state, PIXEL_SHAPE, ACT, "Pendulum-v1", STATE_DIM)
    with pytest.raises(SACError, match=r"observed a state of 3 dims .* gives 0") as e:
        check_spaces(state, PIXEL_SHAPE, ACT, "Pendulum-v1")
    assert "\n" not in str(e.value) and "env.pixels_state" in str(e.value)
    # a run of the frames alone cannot continue from it
    frames_only = [o for o in RUN if "pixels_state" not in o]
    trainer_cfg = make_cfg(*frames_only)
    with pytest.raises(SACError, match=r"observed a state of 3 dims"):
        Trainer(trainer_cfg, run_dir.parent / "frames_only", resume_from=run_dir)
    # the structure checks: a state_dim beside images only, an integer >= 0
    for damage in ({"state_dim": -1}, {"state_dim": 3, "obs_shape": [768], "obs_dim": 768}):
        damaged = {**state, "spaces": {**state["spaces"], **damage}}
        assert _payload_problem(damaged).startswith("spaces.state_dim is not an integer >= 0")


def test_a_resumed_pixels_state_run_continues_to_a_later_step(run_dir, make_cfg, tmp_path):
    shutil.copytree(run_dir, tmp_path / "run")
    overrides = [*RUN, "total_steps=80", f"resume={tmp_path / 'run'}"]
    train(make_cfg(*overrides), tmp_path / "run", overrides)
    state = load_checkpoint(tmp_path / "run", mmap=False)
    assert state["counters"]["env_steps"] == 80 and state["spaces"]["state_dim"] == STATE_DIM
    before = load_checkpoint(run_dir, mmap=False)
    # the first 60 steps' states are kept in the buffer, and 20 more stored after them
    n = len(before["buffer"]["state"])
    assert len(state["buffer"]["state"]) > n
    torch.testing.assert_close(state["buffer"]["state"][:n], before["buffer"]["state"])


# ----------------------------------------------------------------------------- load_policy
def _observations(n: int) -> list[dict[str, np.ndarray]]:
    env = make_env("Pendulum-v1", pixels=SPEC)
    out = [env.reset(seed=seed)[0] for seed in range(n)]
    env.close()
    return out


def test_load_policy_takes_the_dict_one_or_a_batch_and_refuses_others(run_dir):
    policy = load_policy(run_dir)
    dicts = _observations(3)
    one = policy(dicts[0])
    assert one.shape == (ACT,) and one.dtype == np.float32 and -2 <= one[0] <= 2
    batch = {k: np.stack([d[k] for d in dicts]) for k in (PIXELS, STATE)}
    actions = policy(batch)
    assert actions.shape == (3, ACT)
    np.testing.assert_allclose(actions[0], one, rtol=0, atol=1e-6)
    # the state matters to the action
    moved = policy({**dicts[0], STATE: dicts[0][STATE] + 1.0})
    assert not np.allclose(moved, one)
    with pytest.raises(SACError, match="frames beside the state, a dict"):
        policy(dicts[0][PIXELS])
    with pytest.raises(SACError, match="frames beside the state, a dict"):
        policy({PIXELS: dicts[0][PIXELS]})
    with pytest.raises(SACError, match="uint8"):
        policy({**dicts[0], PIXELS: dicts[0][PIXELS].astype(np.float32)})
    with pytest.raises(SACError, match="observation of shapes"):
        policy({**dicts[0], STATE: np.zeros(4, np.float32)})
    with pytest.raises(SACError, match="observation of shapes"):  # batches of two sizes
        policy({PIXELS: batch[PIXELS], STATE: batch[STATE][:2]})


# ----------------------------------------------------------------------------- the CLI
@pytest.mark.slow
@pytest.mark.skipif(not HAS_ONNX, reason="needs the export extra (onnxruntime)")
def test_a_pixels_state_run_through_the_cli_then_sac_eval_and_sac_export(tmp_path):
    """sac-train, sac-eval, then sac-export format=all (parity-checked by sac-export itself):
    two named inputs, uint8 frames and float32 states; the files act as load_policy does."""
    import onnxruntime as ort

    run = tmp_path / "run"
    done = run_cli(
        ["sac-train", *RUN, "torch_threads=1", f"hydra.run.dir={run}"], tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"obs 6x{SIZE}x{SIZE} + state 3" in done.stdout + done.stderr

    ev = run_cli(["sac-eval", f"checkpoint={run}", "episodes=1", "device=cpu"], tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 1 and np.isfinite(result["mean"])

    out = tmp_path / "export"
    ex = run_cli(
        ["sac-export", f"checkpoint={run}", "format=all", f"output_dir={out}", "device=cpu"],
        tmp_path,
        timeout=600,
    )
    assert ex.returncode == 0, ex.stderr[-3000:]
    info = json.loads((out / "policy.json").read_text())
    assert info["inputs"] == [
        {"name": PIXELS, "dtype": "uint8", "shape": ["batch", *PIXEL_SHAPE]},
        {"name": STATE, "dtype": "float32", "shape": ["batch", STATE_DIM]},
    ]
    assert "input" not in info and info["state_dim"] == STATE_DIM
    assert "state" in info["policy"]
    assert max(info["max_abs_error"].values()) <= 1e-5

    policy = load_policy(run)
    dicts = _observations(3)
    feed = {k: np.stack([d[k] for d in dicts]) for k in (PIXELS, STATE)}
    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        (PIXELS, "tensor(uint8)"),
        (STATE, "tensor(float)"),
    ]
    np.testing.assert_allclose(session.run(["action"], feed)[0], policy(feed), rtol=0, atol=1e-5)
    one = {k: v[None] for k, v in dicts[0].items()}
    np.testing.assert_allclose(session.run(["action"], one)[0][0], policy(dicts[0]), atol=1e-5)
    program = torch.export.load(out / "policy.pt2").module()
    pt2 = program(torch.as_tensor(feed[PIXELS]), torch.as_tensor(feed[STATE])).numpy()
    np.testing.assert_allclose(pt2, policy(feed), rtol=0, atol=1e-5)
