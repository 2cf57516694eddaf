"""The training loop in-process: what it stores, logs and saves."""

import csv

import numpy as np
import pytest
import torch
from conftest import assert_recorded_as_cuda_graphs, compile_with

from sac.checkpoint import load_checkpoint
from sac.errors import SACError
from sac.runtime import resolve_device
from sac.trainer import Trainer

SHORT = [
    "total_steps=600",
    "agent.warmup_steps=200",
    "eval_every=300",
    "eval_episodes=1",
    "checkpoint_every=300",
    "log_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
]


@pytest.mark.slow
def test_short_run_logs_saves_and_stores_truncations_correctly(make_cfg, tmp_path):
    trainer = Trainer(make_cfg(*SHORT), tmp_path)
    buf = trainer.buffer
    summary = trainer.train()
    assert summary["steps"] == 600 and summary["episodes"] == 3  # Pendulum: 200-step episodes

    # Pendulum only truncates: nothing may be stored as terminal, and the last transition of an
    # episode keeps its real final observation rather than the next episode's reset one.
    assert len(buf) == 600 and buf.terminated[:600].sum() == 0
    inside = np.setdiff1d(np.arange(599), [199, 399])
    torch.testing.assert_close(buf.next_obs[inside], buf.obs[inside + 1])
    for end in (199, 399):
        assert not torch.allclose(buf.next_obs[end], buf.obs[end + 1])

    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000000300.pt", "step_0000000600.pt"]
    png = (tmp_path / "returns.png").read_bytes()  # the run's picture, drawn at the end
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    counters = state["counters"]
    assert (counters["env_steps"], counters["updates"], counters["episodes"]) == (600, 400, 3)
    assert counters["last_eval"][0] == 600
    assert state["config"]["env"]["id"] == "Pendulum-v1"
    assert set(state["agent"]) >= {
        "actor",
        "critic",
        "critic_target",
        "log_alpha",
        "actor_optim",
        "critic_optim",
        "alpha_optim",
    }
    assert set(state["rng"]) >= {"torch", "action"}
    assert state["buffer"]["size"] == 600 and state["buffer"]["obs"].shape == (600, 3)
    assert "generator" in state["buffer"]

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    episodes = [r for r in rows if r["train/episode_return"]]
    evals = [r for r in rows if r["eval/return_mean"]]
    train = [r for r in rows if r["losses/critic"]]
    assert [r["train/episode_length"] for r in episodes] == ["200"] * 3
    assert [int(r["step"]) for r in evals] == [300, 600]
    assert [int(r["step"]) for r in train] == [300, 400, 500, 600]  # learning starts at 200
    assert all(
        np.isfinite(float(r[k]))
        for r in train
        for k in ("losses/critic", "losses/actor", "train/alpha", "train/entropy", "perf/sps")
    )


@pytest.mark.slow
def test_a_task_that_terminates_is_stored_as_terminal_where_it_ends(make_cfg, tmp_path):
    # Two envs whose episodes end at different steps (2-9 steps, drawn from each episode's
    # seed); obs = [t, episode id].
    cfg = make_cfg(
        *SHORT, "env.id=CountEnv-v0", "+env.kwargs={length:2,max_length:9}", "env.num_envs=2"
    )
    trainer = Trainer(cfg, tmp_path)
    buf = trainer.buffer
    trainer.train()
    lengths = [env.unwrapped.lengths for env in trainer.envs.envs]
    obs, next_obs, terminated = (x[:600].numpy() for x in (buf.obs, buf.next_obs, buf.terminated))
    env = np.arange(600) % 2  # rows alternate between the two envs, one vector step at a time
    ends = next_obs[:, 0] == [lengths[e][int(k)] for e, k in zip(env, obs[:, 1])]
    np.testing.assert_array_equal(terminated, ends.astype(np.float32))
    np.testing.assert_array_equal(next_obs, obs + np.array([1, 0]))  # never across a reset
    assert terminated.sum() == trainer.episodes > 100
    assert len({tuple(x[:20]) for x in lengths}) == 2  # the envs' episodes differ


@pytest.mark.slow
def test_same_seed_same_run_on_cpu(make_cfg, tmp_path):
    params = []
    for name in ("a", "b"):
        Trainer(make_cfg(*SHORT, "total_steps=300", "checkpoint_every=0"), tmp_path / name).train()
        params.append(load_checkpoint(tmp_path / name)["agent"]["actor"])
    for k in params[0]:
        torch.testing.assert_close(params[0][k], params[1][k], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [[], ["env.num_envs=2", "agent.updates_per_step=1.5"]], ids=["1env", "2envs-utd1.5"]
)
def test_a_compiled_run_takes_the_eager_runs_actions(make_cfg, tmp_path, monkeypatch, extra):
    """A compile=true run (the update as one graph) collects the same transitions and ends
    with the same parameters as an eager run with the same seed. (Traced only: Inductor's
    code generation is tested in test_compiled_update.py.)"""
    compile_with(monkeypatch, "eager")  # (the agent compiles its graph with fullgraph=True)
    runs = {}
    for name in ("eager", "compile"):
        flag = f"compile={name == 'compile'}".lower()
        cfg = make_cfg(*SHORT, "total_steps=300", "checkpoint_every=0", flag, *extra)
        trainer = Trainer(cfg, tmp_path / name)
        trainer.train()
        assert trainer.updater.one_graph == (name == "compile")  # it did not fall back
        runs[name] = trainer
    n = len(runs["eager"].buffer)
    assert n == len(runs["compile"].buffer) == 300
    assert runs["compile"].agent.num_updates == runs["eager"].agent.num_updates > 0
    tol = {"rtol": 1e-4, "atol": 1e-4}
    for field in ("action", "obs"):
        mine, theirs = getattr(runs["compile"].buffer, field), getattr(runs["eager"].buffer, field)
        torch.testing.assert_close(mine[:n], theirs[:n], **tol)
    eager_actor = runs["eager"].agent.actor.parameters()
    for p, q in zip(runs["compile"].agent.actor.parameters(), eager_actor, strict=True):
        torch.testing.assert_close(p, q, **tol)


@pytest.mark.slow
def test_updates_per_call_runs_updates_k_at_a_time(make_cfg, tmp_path, monkeypatch):
    """updates_per_call=3: the updates wait until 3 are due and run in one update_many call
    (the one graph, traced); a compiled and an eager run stay the same run. 150 transitions
    after the warm-up at 1.5 updates each are 225 updates, all run (a multiple of 3)."""
    compile_with(monkeypatch, "eager")
    runs = {}
    for name in ("eager", "compile"):
        cfg = make_cfg(
            *SHORT,
            "total_steps=350",
            "updates_per_call=3",
            "agent.updates_per_step=1.5",
            "checkpoint_every=0",
            f"compile={name == 'compile'}".lower(),
        )
        trainer = Trainer(cfg, tmp_path / name)
        groups: list[torch.Size] = []

        def update_many(batch, seen=groups, run=trainer.updater.update_many):
            seen.append(batch.obs.shape)
            return run(batch)

        monkeypatch.setattr(trainer.updater, "update_many", update_many)
        trainer.train()
        assert trainer.updater.one_graph == (name == "compile")
        # every update in a group of 3 (none called alone)
        assert groups == [(3, 32, 3)] * 75 and trainer.agent.num_updates == 225
        runs[name] = trainer
    for p, q in zip(
        runs["compile"].agent.actor.parameters(), runs["eager"].agent.actor.parameters()
    ):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)
    with open(tmp_path / "compile" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["losses/critic"]]
    assert rows and all(np.isfinite(float(r["losses/critic"])) for r in rows)


@pytest.mark.slow
def test_a_group_of_updates_waits_until_it_is_due(make_cfg, tmp_path):
    """updates_per_call=4 at one update per transition: 401 transitions after the warm-up
    earn 401 updates, of which the 400 of whole groups run."""
    cfg = make_cfg(*SHORT, "total_steps=601", "updates_per_call=4", "checkpoint_every=0")
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    assert trainer.agent.num_updates == 400


def test_vector_envs_count_transitions_and_utd(make_cfg, tmp_path):
    cfg = make_cfg(
        *SHORT,
        "env.num_envs=3",
        "total_steps=300",
        "agent.warmup_steps=150",
        "agent.updates_per_step=0.5",
        "checkpoint_every=0",
    )
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert summary["steps"] == 300 and len(trainer.buffer) == 300
    assert trainer.agent.num_updates == 75  # (300 - 150) transitions * 0.5


@pytest.mark.slow
@pytest.mark.parametrize(("utd", "expected"), [(0.1, 20), (0.29, 58), (1 / 3, 66), (2, 400)])
def test_fractional_updates_per_step_are_counted_exactly(make_cfg, tmp_path, utd, expected):
    cfg = make_cfg(
        *SHORT,
        "total_steps=400",
        f"agent.updates_per_step={utd}",
        "checkpoint_every=0",
        "eval_every=0",
    )
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    assert trainer.agent.num_updates == expected  # floor(200 transitions after warm-up * utd)


@pytest.mark.slow
def test_matmul_precision_holds_for_the_run_and_is_put_back(make_cfg, tmp_path):
    before = torch.get_float32_matmul_precision()
    seen = []
    trainer = Trainer(make_cfg(*SHORT, "total_steps=300", "matmul_precision=medium"), tmp_path)
    update = trainer.agent.update
    trainer.agent.update = lambda batch: (
        seen.append(torch.get_float32_matmul_precision()) or (update(batch))
    )
    trainer.train()
    assert seen and set(seen) == {"medium"}  # every update ran under it
    assert torch.get_float32_matmul_precision() == before


def test_a_trainer_that_fails_to_start_leaves_matmul_precision_alone(make_cfg, tmp_path):
    before = torch.get_float32_matmul_precision()
    cfg = make_cfg(*SHORT, "matmul_precision=medium", "env.id=NoSuchEnv-v0")
    with pytest.raises(SACError):
        Trainer(cfg, tmp_path)
    assert torch.get_float32_matmul_precision() == before


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("total_steps=0", "total_steps"),
        ("agent.batch_size=0", "batch_size"),
        ("agent.tau=0", "tau"),
        ("agent.gamma=1.5", "gamma"),
        ("agent.actor_lr=-1", "lr"),
        ("agent.hidden_sizes=[]", "hidden_sizes"),
        ("env.num_envs=0", "num_envs"),
        ("updates_per_call=0", "updates_per_call must be >= 1"),
        ("matmul_precision=low", "matmul_precision must be one of highest, high, medium"),
        ("cudagraphs=true", "cudagraphs=true needs a CUDA device, and this run is on cpu"),
    ],
)
def test_bad_values_are_refused_before_anything_runs(make_cfg, tmp_path, override, match):
    with pytest.raises(SACError, match=match):
        Trainer(make_cfg(*SHORT, override), tmp_path)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu0", "cuda:99"):
        if bad == "cuda:99" and not torch.cuda.is_available():
            continue  # covered by the no-GPU test below
        with pytest.raises(SACError):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(SACError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.slow
def test_a_failed_plot_does_not_fail_the_run(make_cfg, tmp_path, monkeypatch, caplog):
    def broken(run_dir, title):
        raise RuntimeError("no fonts")

    monkeypatch.setattr("sac.trainer.plot_run", broken)
    summary = Trainer(make_cfg(*SHORT, "total_steps=300", "checkpoint_every=0"), tmp_path).train()
    assert summary["steps"] == 300 and (tmp_path / "checkpoints" / "last.pt").is_file()
    assert "could not draw returns.png: no fonts" in caplog.text


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cudagraphs_run_on_cuda_trains_and_logs_finite_losses(make_cfg, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # this agent's graph only (a compiled one of earlier tests differs)
    counters.clear()
    trainer = Trainer(make_cfg(*SHORT, "device=cuda", "cudagraphs=true"), tmp_path)
    summary = trainer.train()
    assert summary["steps"] == 600 and trainer.updater.cudagraphs  # no fallback to eager
    # With the random numbers drawn the way training draws them.
    assert_recorded_as_cuda_graphs()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    losses = [float(r["losses/critic"]) for r in rows if r["losses/critic"]]
    assert len(losses) == 4 and all(np.isfinite(losses))


@pytest.mark.slow
def test_updates_start_once_a_batch_is_collected_not_in_a_burst(make_cfg, tmp_path, monkeypatch):
    """A warm-up shorter than a batch (the Fetch presets: 100 steps, batch 2048): updates are
    earned from the step that collects the batch's last transition, one per step, never the
    ones of the steps before it all at once."""
    cfg = make_cfg(
        *SHORT,
        "total_steps=200",
        "agent.warmup_steps=20",
        "agent.batch_size=64",
        "checkpoint_every=0",
        "eval_every=0",
    )
    trainer = Trainer(cfg, tmp_path)
    per_step: list[int] = []
    collect = trainer._collect

    def counting_collect() -> None:
        collect()
        per_step.append(trainer.agent.num_updates)

    monkeypatch.setattr(trainer, "_collect", counting_collect)
    trainer.train()
    assert trainer.agent.num_updates == 200 - 64
    runs = np.diff([0, *per_step])  # updates made at each step (after its collect)
    assert runs.max() <= 1, "updates ran in a burst"
