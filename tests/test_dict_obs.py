"""Dict observations at the boundary: a checkpoint of an env with a Dict observation records
its keys, and `load_policy` and `sac-export` take the observation by key (the agent itself
trains on their values flattened, in the Dict's key order)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from sac.checkpoint import load_checkpoint
from sac.config import config_dir, register_configs
from sac.envs import make_env, obs_keys
from sac.errors import SACError
from sac.export import export
from sac.policy import load_policy
from sac.trainer import Trainer

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
# PointGoal-v0 (tests/conftest.py): a Dict of achieved_goal, desired_goal, observation (2,) each
KEYS = [("achieved_goal", (2,)), ("desired_goal", (2,)), ("observation", (2,))]
TINY = [
    "env.id=PointGoal-v0",
    "total_steps=150",
    "agent.warmup_steps=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "eval_every=0",
    "eval_episodes=1",
    "device=cpu",
]


def _compose(name: str, *overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        return compose(name, overrides=list(overrides))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("dict_run")
    Trainer(_compose("train", *TINY), run_dir).train()
    return run_dir


def _observations(n: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """n Dict observations of the env, and the flat vectors the agent sees of them."""
    env = make_env("PointGoal-v0")
    raw = env.unwrapped
    dicts, flats = [], []
    for seed in range(n):
        flat, _ = env.reset(seed=seed)
        dicts.append({k: np.asarray(v, np.float32) for k, v in raw._obs().items()})
        flats.append(flat)
    env.close()
    return dicts, np.stack(flats)


def test_the_keys_are_the_flat_vectors_layout(run_dir):
    env = make_env("PointGoal-v0")
    assert obs_keys(env) == KEYS
    assert obs_keys(make_env("Pendulum-v1")) is None
    env.close()
    spaces = load_checkpoint(run_dir, mmap=False)["spaces"]
    assert spaces["obs_keys"] == [[k, list(s)] for k, s in KEYS]
    dicts, flats = _observations(3)
    for d, f in zip(dicts, flats):  # the flat vector is the values in key order
        np.testing.assert_array_equal(np.concatenate([d[k] for k, _ in KEYS]), f)


def test_load_policy_takes_the_dict_one_or_a_batch(run_dir):
    policy = load_policy(run_dir)
    dicts, flats = _observations(4)
    np.testing.assert_allclose(policy(dicts[0]), policy(flats[0]), rtol=0, atol=1e-6)
    batch = {k: np.stack([d[k] for d in dicts]) for k, _ in KEYS}
    np.testing.assert_allclose(policy(batch), policy(flats), rtol=0, atol=1e-6)
    with pytest.raises(SACError, match="takes the keys"):
        policy({"observation": dicts[0]["observation"]})
    with pytest.raises(SACError, match="observation of shapes"):
        policy({**dicts[0], "observation": np.zeros(3)})


def test_a_policy_without_dict_observations_refuses_a_dict(tmp_path):
    Trainer(_compose("train", *TINY, "env.id=Pendulum-v1"), tmp_path).train()
    with pytest.raises(SACError, match="gives no Dict observation"):
        load_policy(tmp_path)({"observation": np.zeros(3)})


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ONNX, reason="needs the export extra (onnxruntime)")
def test_sac_export_takes_one_named_input_per_key(run_dir, tmp_path):
    import onnxruntime as ort

    info = export(_compose("export", f"checkpoint={run_dir}", f"output_dir={tmp_path}"))
    assert [i["name"] for i in info["inputs"]] == [k for k, _ in KEYS]
    assert all(i["shape"] == ["batch", 2] for i in info["inputs"]) and "input" not in info
    policy = load_policy(run_dir)
    dicts, _ = _observations(5)
    feed = {k: np.stack([d[k] for d in dicts]) for k, _ in KEYS}
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    assert [i.name for i in session.get_inputs()] == [k for k, _ in KEYS]
    onnx_actions = session.run(["action"], feed)[0]
    np.testing.assert_allclose(onnx_actions, policy(feed), rtol=0, atol=1e-5)
    program = torch.export.load(tmp_path / "policy.pt2").module()
    pt2_actions = program(*(torch.as_tensor(feed[k]) for k, _ in KEYS)).numpy()
    np.testing.assert_allclose(pt2_actions, policy(feed), rtol=0, atol=1e-5)


def test_a_dict_with_an_image_is_observed_as_the_image_beside_the_rest():
    """CameraDict-v0 (tests/conftest.py): a channels-last "camera" beside "offset" and "tag"
    becomes {pixels: the camera channels-first, state: offset and tag in key order}."""
    env = make_env("CameraDict-v0")
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pixels", "state"} and obs["pixels"].dtype == np.uint8
    np.testing.assert_array_equal(obs["pixels"], env.unwrapped.render().transpose(2, 0, 1))
    np.testing.assert_array_equal(obs["state"], [*env.unwrapped.offset, 1.0])
    assert obs["state"].dtype == np.float32
    env.close()


def test_a_dict_of_two_images_is_refused_with_the_fix():
    import gymnasium as gym

    image = gym.spaces.Box(0, 255, (20, 20, 3), np.uint8)
    space = gym.spaces.Dict({"left": image, "right": image})
    env = gym.make("CameraDict-v0")
    env.unwrapped.observation_space = space
    gym.register("TwoCameras-v0", entry_point=lambda: env)
    with pytest.raises(SACError, match=r"one image and vectors.*FilterObservation"):
        make_env("TwoCameras-v0")


@pytest.mark.slow
def test_a_dict_with_an_image_trains_and_load_policy_and_sac_export_take_its_keys(tmp_path):
    """CameraDict-v0 trains as the image beside the rest; load_policy takes the env's own
    dict (the camera channels-last, one or a batch) as well as make_env's, and sac-export
    writes one input per key that computes the same actions."""
    cfg = _compose(
        "train",
        "env.id=CameraDict-v0",
        "agent=drq",
        "agent.hidden_sizes=[32,32]",
        "agent.encoder_filters=8",
        "agent.batch_size=16",
        "agent.buffer_size=1000",
        "agent.warmup_steps=50",
        "total_steps=120",
        "eval_every=0",
        "eval_episodes=2",
        "device=cpu",
    )
    run = tmp_path / "run"
    summary = Trainer(cfg, run).train()
    assert np.isfinite(summary["eval_return"])
    spaces = load_checkpoint(Path(summary["checkpoint"]))["spaces"]
    assert spaces["obs_shape"] == [3, 20, 20] and spaces["state_dim"] == 3
    assert spaces["obs_keys"] == [["camera", [20, 20, 3]], ["offset", [2]], ["tag", [1]]]
    policy = load_policy(run)
    env = make_env("CameraDict-v0")
    seen, own = [], []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        seen.append(obs)
        own.append(env.unwrapped._obs())
    env.close()
    want = np.stack([policy(o) for o in seen])
    assert want.shape == (4, 2) and np.abs(want - want[0]).max() > 0  # it reads the obs
    np.testing.assert_allclose(np.stack([policy(o) for o in own]), want, rtol=0, atol=1e-6)
    batch = {k: np.stack([o[k] for o in own]) for k in own[0]}
    np.testing.assert_allclose(policy(batch), want, rtol=0, atol=1e-6)
    with pytest.raises(SACError, match="uint8 images at 'camera'"):
        policy({**own[0], "camera": own[0]["camera"].astype(np.float32)})
    with pytest.raises(SACError, match="frames beside the state"):
        policy(seen[0]["pixels"])

    fmt = "all" if HAS_ONNX else "pt2"
    out = tmp_path / "out"
    info = export(_compose("export", f"checkpoint={run}", f"output_dir={out}", f"format={fmt}"))
    assert [(i["name"], i["dtype"]) for i in info["inputs"]] == [
        ("camera", "uint8"),
        ("offset", "float32"),
        ("tag", "float32"),
    ]
    program = torch.export.load(out / "policy.pt2").module()
    pt2 = program(*(torch.as_tensor(batch[k]) for k in ("camera", "offset", "tag"))).numpy()
    np.testing.assert_allclose(pt2, want, rtol=0, atol=1e-5)
    if HAS_ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "policy.onnx"))
        np.testing.assert_allclose(session.run(["action"], batch)[0], want, rtol=0, atol=1e-5)
