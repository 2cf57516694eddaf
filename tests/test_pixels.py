"""SAC from pixels (DrQ): the random shift, the convolutional encoder's place in the losses
(trained by the critic loss only, the target critics on their own copy), and the update
compiled as eager runs it."""

import contextlib

import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from conftest import assert_encoder_trained_by_the_critic_loss_only

from sac.agent import SAC
from sac.augment import random_shift
from sac.compiled import make_updater
from sac.config import AgentConfig
from sac.errors import SACError
from sac.losses import Batch
from sac.networks import EncodedCritic, conv_output_size

SHAPE, ACT = (6, 20, 20), 2  # two stacked RGB frames of 20x20: 3x3 feature maps


def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    cfg = {"hidden_sizes": [32, 32], "encoder_filters": 8, "encoder_features": 16, **overrides}
    return SAC(SHAPE, ACT, AgentConfig(**cfg))


def make_batch(n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8),
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8),
        (torch.rand(n, generator=g) < 0.2).float(),
    )


# ----------------------------------------------------------------------------- random shift
def test_random_shift_is_a_crop_of_the_border_padded_image_within_the_padding():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 10, 12), dtype=torch.uint8)
    pad = 3
    shifted = random_shift(images, pad)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    padded = F.pad(images.float(), (pad,) * 4, mode="replicate")
    offsets = []
    for image, out in zip(padded, shifted):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(image[:, dy : dy + 10, dx : dx + 12], out.float())
        ]
        assert found, "the output is no crop of the padded image within the padding"
        offsets.append(found[0])
    # the samples get offsets of their own, and these cover the range
    assert len(set(offsets)) > 20
    assert {dy for dy, _ in offsets} == set(range(2 * pad + 1))


def test_random_shift_without_padding_leaves_the_images_as_they_are():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert random_shift(images, 0) is images


def test_the_update_augments_obs_and_next_obs_independently_per_sample():
    agent = make_agent(augment_pad=2)
    batch = make_batch()
    # one image repeated: shifts that differ show up as different images
    same = batch.obs[:1].expand_as(batch.obs).contiguous()
    out = agent.augmented(batch._replace(obs=same, next_obs=same))
    assert len({tuple(x.flatten().tolist()) for x in out.obs}) > 1
    assert not torch.equal(out.obs, out.next_obs)
    # augment_pad=0: no augmentation at all
    plain = make_agent(augment_pad=0)
    assert plain.augmented(batch) is batch


# ----------------------------------------------------------------------------- encoder
def test_the_encoder_is_trained_by_the_critic_loss_and_not_by_the_actor_loss():
    assert_encoder_trained_by_the_critic_loss_only(make_agent(), make_batch())


def test_one_update_moves_the_encoder_only_through_the_critic_optimizer():
    agent = make_agent()
    actor_params = {id(p) for g in agent.actor_optim.param_groups for p in g["params"]}
    critic_params = {id(p) for g in agent.critic_optim.param_groups for p in g["params"]}
    encoder = [id(p) for p in agent.critic.encoder.parameters()]
    assert set(encoder) <= critic_params and not set(encoder) & actor_params
    before = [p.clone() for p in agent.critic.encoder.parameters()]
    agent.update(make_batch())
    assert all(not torch.equal(b, p) for b, p in zip(before, agent.critic.encoder.parameters()))


def test_the_target_uses_the_target_critics_encoder_and_the_live_encoder_for_the_next_action():
    agent = make_agent(augment_pad=0)
    batch = make_batch()
    alpha = torch.tensor(0.1)
    torch.manual_seed(1)
    y = agent.td_target(batch, alpha)
    # changing the target encoder changes y ...
    with torch.no_grad():
        for p in agent.critic_target.encoder.parameters():
            p.add_(0.05)
    torch.manual_seed(1)
    y_target_moved = agent.td_target(batch, alpha)
    assert not torch.allclose(y, y_target_moved)
    # ... and so does the live encoder, through a' ~ pi(.|s') on its features
    with torch.no_grad():
        for p in agent.critic.encoder.parameters():
            p.add_(0.05)
    torch.manual_seed(1)
    assert not torch.allclose(agent.td_target(batch, alpha), y_target_moved)


def test_polyak_moves_the_target_encoder_towards_the_encoder():
    agent = make_agent(tau=0.5)
    with torch.no_grad():
        for p in agent.critic.encoder.parameters():
            p.add_(1.0)
    old = [p.clone() for p in agent.critic_target.encoder.parameters()]
    agent.polyak_update()
    for o, t, p in zip(
        old, agent.critic_target.encoder.parameters(), agent.critic.encoder.parameters()
    ):
        torch.testing.assert_close(t, 0.5 * o + 0.5 * p)


def test_encoder_shapes_and_acting():
    agent = make_agent()
    assert isinstance(agent.critic, EncodedCritic)
    assert conv_output_size(84, 84, 4) == (35, 35)  # DrQ's 35x35 maps of 84x84 frames
    assert agent.critic.encoder.out_dim == 8 * 3 * 3
    batch = make_batch(5)
    assert agent.critic(batch.obs, batch.action).shape == (2, 5)
    for deterministic in (True, False):
        action = agent.act(batch.obs, deterministic=deterministic)
        assert action.shape == (5, ACT) and action.abs().max() <= 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"network": "simbav2"}, "agent.network=mlp"),
        ({"target_networks": False}, "agent.target_networks=true"),
        ({"obs_norm": True}, "agent.obs_norm=false"),
        ({"gsde": True}, "agent.gsde=false"),
        ({"encoder_layers": 9}, "too small"),
    ],
)
def test_image_observations_refuse_what_the_encoder_cannot_take(overrides, message):
    with pytest.raises(SACError, match=message):
        make_agent(**overrides)


def test_a_state_of_another_image_size_is_refused_before_loading():
    state = make_agent().state_dict()
    with pytest.raises(ValueError, match=r"critic\.encoder|actor\.net"):
        SAC.from_state(
            (6, 24, 24),
            ACT,
            AgentConfig(hidden_sizes=[32, 32], encoder_filters=8, encoder_features=16),
            state,
        )


# ----------------------------------------------------------------------------- compiled
@pytest.mark.slow
@pytest.mark.parametrize("one_graph", [True, False], ids=["one-graph", "per-loss"])
def test_compiled_pixel_update_matches_eager(monkeypatch, one_graph):
    """compile=true runs the random shift and the encoder inside its graph(s) and gives the
    eager update's numbers (a seed gives the same shifts and policy noise)."""
    torch._dynamo.reset()
    options = {"target_update_interval": 2, "actor_update_interval": 2}
    eager, fast = make_agent(**options), make_agent(**options)
    updater = make_updater(fast, compile=True)
    if not one_graph:  # the per-loss path (what batch norm uses)
        updater = make_updater(fast, compile=True)
        updater.one_graph, updater._graph = False, None
        updater._losses = (
            torch.compile(fast.critic_loss, options={"fallback_random": True}),
            torch.compile(fast.actor_loss, options={"fallback_random": True}),
        )
    patch = inductor_config.patch(fallback_random=True)
    with patch if not one_graph else contextlib.nullcontext():
        for step in range(4):
            batch = make_batch(seed=step)
            torch.manual_seed(100 + step)
            want = eager.update(batch)
            torch.manual_seed(100 + step)
            got = updater.update(batch)
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
    assert updater.compiled
    for p, q in zip(fast.critic.parameters(), eager.critic.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- end to end
# Pendulum-v1 from 32x32 frames, 2 stacked: small enough for seconds of CPU.
PIXEL_RUN = [
    "env.id=Pendulum-v1",
    "env.pixels=true",
    "env.image_size=32",
    "env.frame_stack=2",
    "agent=drq",
    "agent.hidden_sizes=[32,32]",
    "agent.encoder_filters=8",
    "agent.batch_size=32",
    "agent.buffer_size=1000",
    "agent.warmup_steps=100",
    "device=cpu",
]


@pytest.mark.slow
def test_a_pixel_run_through_the_cli_then_sac_eval_with_video_and_sac_export(tmp_path):
    """Train from frames, evaluate with a video, export to ONNX (uint8 input, parity-checked
    by sac-export on real and random frames), act through load_policy."""
    import json

    from conftest import run_cli

    from sac.checkpoint import _payload_problem, load_checkpoint
    from sac.envs import PixelSpec, make_env
    from sac.policy import load_policy

    run = tmp_path / "run"
    done = run_cli(
        [
            "sac-train",
            *PIXEL_RUN,
            "total_steps=300",
            "eval_every=0",
            "eval_episodes=1",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "obs 6x32x32" in done.stdout + done.stderr
    state = load_checkpoint(run, mmap=False)
    assert state["spaces"]["obs_shape"] == [6, 32, 32]
    frames = state["buffer"]["frames"]
    assert frames.dtype == torch.uint8 and tuple(frames.shape[1:]) == (3, 32, 32)
    assert len(frames) == 302  # each frame once: 300 steps' frames and 2 episodes' reset frames
    # the checkpoint's structure checks take the frame buffer's own
    assert _payload_problem(state) is None
    state["buffer"]["age"][5] = 7  # above frame_stack
    assert _payload_problem(state).startswith("buffer.age holds values above frame_stack")

    ev = run_cli(["sac-eval", f"checkpoint={run}", "episodes=1", "video=true"], tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 1 and np.isfinite(result["mean"])
    assert list((run / "eval").rglob("*.mp4"))

    ex = run_cli(["sac-export", f"checkpoint={run}", "format=onnx"], tmp_path)
    assert ex.returncode == 0, ex.stderr[-3000:]
    info = json.loads(ex.stdout.strip().splitlines()[-1])
    assert info["input"] == {"name": "obs", "dtype": "uint8", "shape": ["batch", 6, 32, 32]}
    assert max(info["max_abs_error"].values()) <= 1e-5

    # the Python policy takes the env's own uint8 stacks, one or a batch
    policy = load_policy(run)
    env = make_env("Pendulum-v1", pixels=PixelSpec(size=32, frame_stack=2))
    obs, _ = env.reset(seed=0)
    action = policy(obs)
    assert action.shape == (1,) and -2 <= action[0] <= 2
    np.testing.assert_allclose(policy(np.stack([obs, obs]))[1], action, rtol=0, atol=1e-6)
    with pytest.raises(SACError, match="uint8"):
        policy(obs.astype(np.float32))
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("state", [False, True], ids=["pixels", "pixels-state"])
def test_a_pixel_run_resumed_where_episodes_end_equals_the_uninterrupted_run(
    make_cfg, tmp_path, state
):
    """Also with the state beside the frames (env.pixels_state): the buffer's states too."""
    import shutil

    from conftest import assert_same_state

    from sac.checkpoint import load_checkpoint
    from sac.train import train

    # two envs of 40-step episodes: both end theirs at the checkpoint of step 80
    common = [
        *PIXEL_RUN,
        f"env.pixels_state={str(state).lower()}",
        "env.num_envs=2",
        "+env.kwargs.max_episode_steps=40",
        "agent.warmup_steps=40",
        "checkpoint_every=80",
        "keep_checkpoints=0",
        "total_steps=160",
        "eval_every=0",
        "eval_episodes=1",
    ]
    train(make_cfg(*common), tmp_path / "whole", common)
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoints" / "step_0000000080.pt"
    train(make_cfg(*common, f"resume={ckpt}"), tmp_path / "cut", [*common, f"resume={ckpt}"])
    whole, cut = (load_checkpoint(tmp_path / d, mmap=False) for d in ("whole", "cut"))
    assert ("state" in whole["buffer"]) == state
    for part in ("agent", "buffer", "rng", "counters"):
        assert_same_state(whole[part], cut[part], part)


def test_an_envs_own_images_are_taken_channels_first_and_unstacked():
    from sac.envs import make_env, obs_shape

    env = make_env("Dot-v0")
    obs, _ = env.reset(seed=0)
    assert obs_shape(env) == (3, 20, 20) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, env.unwrapped._image().transpose(2, 0, 1))
    env.close()


# The learning runs on the dot envs of tests/conftest.py
DOT_RUN = [
    "agent=drq",
    "agent.hidden_sizes=[64,64]",
    "agent.encoder_filters=16",
    "agent.batch_size=64",
    "agent.buffer_size=10000",
    "agent.warmup_steps=500",
    "agent.augment_pad=1",  # a shift moves the dot: keep it small on this task
    "total_steps=2000",
    "eval_every=0",
    "eval_episodes=100",
    "device=cpu",
    "seed=0",
]


@pytest.mark.slow
def test_sac_from_images_learns_to_act_on_what_they_show(make_cfg, tmp_path):
    """A real learning run: on Dot-v0 the action must point at a dot the image shows. The
    best action that ignores the image earns about -0.81; the learnt policy earns far more,
    so the encoder has learnt where the dot is (from the critic loss alone)."""
    from sac.trainer import Trainer

    cfg = make_cfg("env.id=Dot-v0", *DOT_RUN)
    summary = Trainer(cfg, tmp_path).train()
    assert summary["eval_return"] > -0.3, summary


@pytest.mark.slow
def test_sac_from_frames_beside_the_state_learns_to_act_on_both(make_cfg, tmp_path):
    """A real learning run with env.pixels_state: on DotOffset-v0 the action must point at a
    rendered dot moved by an offset only the state gives. The best action blind to either
    earns about -0.38; the learnt policy earns far more, so it reads both."""
    from sac.trainer import Trainer

    frames = ["env.pixels=true", "env.pixels_state=true", "env.image_size=20", "env.frame_stack=1"]
    cfg = make_cfg("env.id=DotOffset-v0", *frames, *DOT_RUN)
    summary = Trainer(cfg, tmp_path).train()
    assert summary["eval_return"] > -0.2, summary
