"""agent.obs_norm: running observation statistics (exact over uneven batches), the same
normalisation in acting, every update path (eager, compiled, one graph, K at a time) and the
policy, stored in checkpoints and frozen on resume and in evaluation."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import assert_recorded_as_cuda_graphs, compile_with, run_cli
from torch._dynamo.utils import counters

from sac.agent import METRIC_NAMES, SAC, Batch, Metrics
from sac.compiled import make_updater
from sac.config import AgentConfig, validated
from sac.envs import make_env
from sac.errors import SACError
from sac.obs_norm import EPS, ObsNormalizer
from sac.rollout import evaluate_policy
from sac.trainer import Trainer

OBS, ACT = 5, 2
# Features on very different scales and offsets: what the option is for.
OFFSET = np.array([100.0, -3.0, 0.0, 5e3, 0.5])
SPREAD = np.array([10.0, 0.1, 1.0, 1e3, 1e-3])
BATCH_NORM = {"critic_norm": "batch", "actor_batch_norm": True, "target_networks": False}


def observations(n: int, seed: int, drift: float = 0.0) -> np.ndarray:
    """Raw observations; `drift` moves their mean, as a learning policy moves its states."""
    rng = np.random.default_rng(seed)
    return OFFSET + drift * SPREAD + SPREAD * rng.standard_normal((n, OBS))


def fitted(obs_norm: ObsNormalizer, seed: int = 0) -> np.ndarray:
    """Feed `obs_norm` three uneven batches; return all they held."""
    data = [observations(n, seed + i, drift=i) for i, n in enumerate((3, 40, 1))]
    for x in data:
        obs_norm.update(torch.as_tensor(x, dtype=torch.float32))
    return np.concatenate(data).astype(np.float32)


def make_agent(seed: int = 0, **overrides) -> SAC:
    torch.manual_seed(seed)
    return SAC(OBS, ACT, AgentConfig(hidden_sizes=[32, 32], **overrides))


def raw_batch(seed: int, n: int = 64, drift: float = 0.0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    f32 = {"dtype": torch.float32}
    return Batch(
        torch.as_tensor(observations(n, seed, drift), **f32),
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.as_tensor(observations(n, seed + 1000, drift), **f32),
        (torch.rand(n, generator=g) < 0.1).float(),
    )


def by_hand(obs: torch.Tensor, data: np.ndarray, clip: float | None = 10.0) -> torch.Tensor:
    """(obs - mean) / sqrt(var + eps), clipped, from numpy's statistics of `data`."""
    x64 = data.astype(np.float64)
    mean = torch.as_tensor(x64.mean(0), dtype=torch.float32)
    std = torch.as_tensor(np.sqrt(x64.var(0) + EPS), dtype=torch.float32)
    x = (obs - mean) / std
    return x if clip is None else x.clamp(-clip, clip)


def _vec(m: Metrics) -> torch.Tensor:
    return torch.stack([m[name] for name in METRIC_NAMES])


def _assert_same_networks(a: SAC, b: SAC, tol: dict[str, float]) -> None:
    for net_a, net_b in ((a.actor, b.actor), (a.critic, b.critic)):
        for p, q in zip(net_a.parameters(), net_b.parameters(), strict=True):
            torch.testing.assert_close(p, q, **tol)


# ----------------------------------------------------------------------------- statistics
def test_running_statistics_are_numpys_over_everything_seen_in_uneven_batches():
    """Batches of 1 to 500 rows whose means differ: a merge that dropped the between-batch
    term of Chan et al.'s variance, or weighted the batches wrongly, is far off here."""
    norm = ObsNormalizer(OBS)
    sizes = (1, 7, 1, 500, 2, 33, 1)
    data = [observations(n, seed=i, drift=3.0 * i) for i, n in enumerate(sizes)]
    for i, x in enumerate(data):
        norm.update(torch.as_tensor(x))  # float64 in
        seen = np.concatenate(data[: i + 1])
        np.testing.assert_allclose(norm.mean.numpy(), seen.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(norm.var.numpy(), seen.var(0), rtol=1e-10, atol=1e-16)
        assert norm.count.item() == len(seen)
    assert norm.mean.dtype == norm.var.dtype == norm.count.dtype == torch.float64
    # What the networks read: float32 mean and sqrt(var + eps).
    assert norm.loc.dtype == norm.scale.dtype == torch.float32
    np.testing.assert_allclose(norm.loc.numpy(), seen.mean(0).astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(norm.scale.numpy(), np.sqrt(seen.var(0) + EPS), rtol=1e-7)
    norm.update(torch.zeros(0, OBS))  # an empty batch changes nothing
    assert norm.count.item() == len(seen)


def test_normalised_observations_are_clipped_and_identity_before_any_data():
    fresh = ObsNormalizer(OBS, clip=10.0)
    x = torch.tensor([[0.5, -3.0, 9.0, 11.0, -25.0]])
    assert torch.equal(fresh(x), torch.tensor([[0.5, -3.0, 9.0, 10.0, -10.0]]))
    data = fitted(fresh)
    far = torch.as_tensor(OFFSET + 50 * SPREAD, dtype=torch.float32).expand(2, OBS)
    assert torch.equal(fresh(far), torch.full((2, OBS), 10.0))  # 50 standard deviations
    unclipped = ObsNormalizer(OBS, clip=None)
    fitted(unclipped)
    torch.testing.assert_close(unclipped(far), by_hand(far, data, clip=None))
    assert unclipped(far).min() > 40
    near = torch.as_tensor(observations(16, seed=99), dtype=torch.float32)
    torch.testing.assert_close(fresh(near), by_hand(near, data))  # within the clip: the same


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.obs_norm_clip=0", "agent.obs_norm_clip must be > 0, or null"),
        ("agent.obs_norm_clip=-1.5", "agent.obs_norm_clip must be > 0, or null"),
    ],
)
def test_bad_clip_values_are_refused(make_cfg, override, message):
    with pytest.raises(SACError, match=message):
        validated(make_cfg("agent.obs_norm=true", override))


def test_off_by_default_and_the_agent_has_no_normaliser(make_cfg):
    cfg = make_cfg()
    assert cfg.agent.obs_norm is False and cfg.agent.obs_norm_clip == 10.0
    assert AgentConfig().obs_norm is False
    agent = make_agent()
    assert agent.obs_norm is None and agent.state_dict()["obs_norm"] is None
    batch = raw_batch(0)
    assert agent.normalized(batch) is batch
    agent.update_obs_norm(batch.obs)  # a no-op
    assert validated(make_cfg("agent.obs_norm_clip=null")).agent.obs_norm_clip is None


# ----------------------------------------------------------------------------- acting, updating
def test_act_sees_observations_normalised_by_the_statistics():
    """An obs_norm agent acting on raw observations acts as the same networks without it do
    on observations normalised by hand, deterministic and sampled."""
    normed, plain = make_agent(obs_norm=True), make_agent()
    plain.actor.load_state_dict(normed.actor.state_dict())
    data = fitted(normed.obs_norm)
    obs = torch.as_tensor(observations(32, seed=7, drift=2.0), dtype=torch.float32)
    obs[0] += 1e4  # far outside: clipped
    got = normed.act(obs, deterministic=True)
    torch.testing.assert_close(got, plain.act(by_hand(obs, data), deterministic=True))
    assert not torch.allclose(got, plain.act(obs, deterministic=True), atol=1e-3)
    torch.manual_seed(3)
    sampled = normed.act(obs)
    torch.manual_seed(3)
    torch.testing.assert_close(sampled, plain.act(by_hand(obs, data)))


@pytest.mark.parametrize("options", [{}, BATCH_NORM], ids=["sac", "batch-norm"])
def test_update_sees_normalised_obs_and_next_obs(options):
    """SAC.update on raw batches equals the update of the same networks without obs_norm on
    the batches normalised by hand (obs and next_obs), step for step."""
    normed, plain = make_agent(obs_norm=True, **options), make_agent(**options)
    state = normed.state_dict()
    state["obs_norm"] = None
    plain.load_state_dict(copy.deepcopy(state))
    data = fitted(normed.obs_norm)
    for step in range(3):
        batch = raw_batch(step, drift=step)
        hand = batch._replace(obs=by_hand(batch.obs, data), next_obs=by_hand(batch.next_obs, data))
        torch.manual_seed(step)
        got = normed.update(batch)
        torch.manual_seed(step)
        want = plain.update(hand)
        torch.testing.assert_close(_vec(got), _vec(want), rtol=1e-5, atol=1e-6)
    _assert_same_networks(normed, plain, {"rtol": 1e-5, "atol": 1e-6})


def _compiled_twins(monkeypatch, backend, device: str = "cpu", **options) -> tuple[SAC, SAC]:
    """An eager obs_norm agent and a copy of it; torch.compile made to use `backend` (None:
    Inductor). A delayed actor and target update: both Python branches get taken."""
    if backend is not None:
        compile_with(monkeypatch, backend)
    else:
        torch._dynamo.reset()
    counters.clear()
    cfg = AgentConfig(
        hidden_sizes=[32, 32],
        obs_norm=True,
        target_update_interval=2,
        actor_update_interval=2,
        **options,
    )
    torch.manual_seed(0)
    eager, fast = SAC(OBS, ACT, cfg, device), SAC(OBS, ACT, cfg, device)
    fast.load_state_dict(copy.deepcopy(eager.state_dict()))
    return eager, fast


def _run_with_changing_statistics(
    eager: SAC, fast: SAC, fast_update: Callable[[Batch], Metrics], k: int, steps: int = 4
) -> None:
    """Before each call, both agents' statistics take in a new batch of observations whose
    mean moves: a graph that had kept the first call's statistics as constants would part
    from eager at the second call."""
    for step in range(steps):
        new = torch.as_tensor(observations(7 + step, seed=50 + step, drift=4.0 * step))
        eager.update_obs_norm(new)
        fast.update_obs_norm(new)
        batches = [
            Batch(*(x.to(eager.device) for x in raw_batch(10 * step + i, drift=2.0 * step)))
            for i in range(k)
        ]
        torch.manual_seed(step)
        want = torch.stack([_vec(eager.update(b)) for b in batches])
        torch.manual_seed(step)
        if k == 1:
            got = _vec(fast_update(batches[0]))[None]
        else:
            got = _vec(fast_update(Batch(*(torch.stack(x) for x in zip(*batches))))).T
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=f"call {step}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "k"),
    [({}, 1), ({}, 2), (BATCH_NORM, 1)],
    ids=["one-graph", "update-many", "batch-norm-per-loss"],
)
def test_compiled_updates_read_the_current_statistics(monkeypatch, options, k):
    """Traced by Dynamo (the "eager" backend, no Inductor): the statistics are inputs of the
    compiled code, read at each call, and changing them compiles nothing new."""
    eager, fast = _compiled_twins(monkeypatch, "eager", **options)
    updater = make_updater(fast, compile=True)
    assert updater.one_graph == (options is not BATCH_NORM)
    method = updater.update if k == 1 else updater.update_many
    _run_with_changing_statistics(eager, fast, method, k)
    assert updater.compiled and fast.num_updates == eager.num_updates == 4 * k
    if updater.one_graph:
        # one graph per (actor step, Polyak update) pattern, none for new statistics
        assert counters["stats"]["unique_graphs"] == (2 if k == 1 else 1)
    _assert_same_networks(fast, eager, {"rtol": 1e-4, "atol": 1e-5})
    for mine, theirs in zip(fast.obs_norm.buffers(), eager.obs_norm.buffers(), strict=True):
        assert torch.equal(mine, theirs)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("device", "flag"),
    [
        ("cpu", "compile"),
        pytest.param("cuda", "compile", marks=CUDA),
        pytest.param("cuda", "cudagraphs", marks=CUDA),
    ],
)
def test_inductor_one_graph_reads_the_current_statistics(device, flag):
    """The same with the real Inductor (on CPU with cpp_wrapper; on CUDA also replayed as a
    CUDA graph, which must read the statistics' memory at each replay)."""
    eager, fast = _compiled_twins(None, None, device)
    updater = make_updater(fast, **{flag: True})
    _run_with_changing_statistics(eager, fast, updater.update, 1)
    assert updater.compiled and updater.one_graph
    if flag == "cudagraphs":
        assert_recorded_as_cuda_graphs()
    _assert_same_networks(fast, eager, {"rtol": 1e-4, "atol": 1e-5})


# ----------------------------------------------------------------------------- state
def test_state_dict_round_trip_restores_the_statistics_bit_for_bit():
    agent = make_agent(obs_norm=True)
    fitted(agent.obs_norm)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    obs = torch.as_tensor(observations(9, seed=5), dtype=torch.float32)
    for actor_only in (False, True):  # actor_only: sac-eval, sac-export, load_policy
        buf.seek(0)
        other = make_agent(seed=1, obs_norm=True)
        other.load_state_dict(torch.load(buf, weights_only=True), actor_only=actor_only)
        for name, saved in agent.obs_norm.state_dict().items():
            mine = other.obs_norm.state_dict()[name]
            assert mine.dtype == saved.dtype and torch.equal(mine, saved), name
        assert torch.equal(other.act(obs, True), agent.act(obs, True))


def test_a_state_saved_with_the_other_setting_is_refused():
    normed, plain = make_agent(obs_norm=True), make_agent()
    with pytest.raises(SACError, match=r"=true, but the state was saved with .*=false"):
        normed.load_state_dict(plain.state_dict(), actor_only=True)
    with pytest.raises(SACError, match=r"=false, but the state was saved with .*=true"):
        plain.load_state_dict(normed.state_dict())
    old = plain.state_dict()
    del old["obs_norm"]  # checkpoints from before the option load as before
    plain.load_state_dict(old)


def test_evaluation_never_changes_the_statistics():
    agent = SAC(3, 1, AgentConfig(hidden_sizes=[16], obs_norm=True))
    agent.update_obs_norm(torch.randn(50, 3) * 4)
    before = copy.deepcopy(agent.obs_norm.state_dict())
    env = make_env("Pendulum-v1")
    try:
        evaluate_policy(agent, env, episodes=1, seed=0, deterministic=False)
    finally:
        env.close()
    for name, value in agent.obs_norm.state_dict().items():
        assert torch.equal(value, before[name]), name


SMALL = [
    "agent.warmup_steps=60",
    "eval_every=100",
    "eval_episodes=1",
    "log_every=100",
    "checkpoint_every=0",
    "agent.batch_size=16",
    "agent.hidden_sizes=[16,16]",
    "device=cpu",
    "agent.obs_norm=true",
]


@pytest.mark.slow
def test_trainer_statistics_are_those_of_every_stored_observation(make_cfg, tmp_path):
    """Two envs, warm-up and policy steps, evaluations in between (which add nothing): the
    statistics are numpy's over the obs column of the replay buffer, the raw observations."""
    cfg = make_cfg(
        *SMALL,
        "total_steps=200",
        "env.id=CountEnv-v0",
        "+env.kwargs={length:4,max_length:9}",
        "env.num_envs=2",
    )
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    stored = trainer.buffer.obs[: len(trainer.buffer)].double().numpy()
    assert len(stored) == 200 and stored[:, 0].max() >= 4  # raw: t counts up
    norm = trainer.agent.obs_norm
    np.testing.assert_allclose(norm.mean.numpy(), stored.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), stored.var(0), rtol=1e-10)
    assert norm.count.item() == 200 and trainer.last_eval is not None


@pytest.mark.slow
def test_cli_train_resume_and_eval_with_obs_norm(tmp_path):
    """sac-train on Pendulum with agent.obs_norm=true, resumed to more steps, then sac-eval:
    the checkpoints hold the statistics of every stored observation, the resumed run starts
    from them exactly, and sac-eval's episodes are the trainer's final evaluation's (the same
    seed, so only the same normalisation gives the same returns)."""
    args = [
        "agent.warmup_steps=100",
        "eval_episodes=2",
        "eval_every=0",
        "checkpoint_every=200",
        "keep_checkpoints=0",
        "agent.batch_size=32",
        "agent.hidden_sizes=[32,32]",
        "device=cpu",
        "agent.obs_norm=true",
        "hydra.run.dir=run",
    ]
    proc = run_cli(["sac-train", *args, "total_steps=400"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "run"
    first = torch.load(run_dir / "checkpoints" / "step_0000000400.pt", weights_only=True)
    proc = run_cli(["sac-train", *args, "total_steps=600", "resume=auto"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout + proc.stderr
    last = torch.load(run_dir / "checkpoints" / "step_0000000600.pt", weights_only=True)
    buffer = last["buffer"]["obs"].double()
    assert first["agent"]["obs_norm"]["count"].item() == 400
    stats = last["agent"]["obs_norm"]
    assert stats["count"].item() == 600 == len(buffer)
    # The 600-step statistics are the 400-step ones merged with the 200 later observations:
    # the resume started from the saved statistics, and they cover exactly the buffer.
    np.testing.assert_allclose(stats["mean"].numpy(), buffer.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        stats["var"].numpy(), buffer.var(0, correction=0).numpy(), rtol=1e-10
    )
    proc = run_cli(["sac-eval", "checkpoint=run", "episodes=2", "device=cpu"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["checkpoint_steps"] == 600
    with open(run_dir / "metrics.csv") as f:
        (final,) = [r for r in csv.DictReader(f) if r["step"] == "600" and r["eval/return_mean"]]
    assert summary["mean"] == pytest.approx(float(final["eval/return_mean"]), rel=1e-6)
