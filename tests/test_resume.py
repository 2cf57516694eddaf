"""Resume: exact continuation, config rules, fallbacks, faults (in-process, small runs)."""

import csv
import gc
import shutil
import signal
import tempfile

import numpy as np
import pytest
import torch
from conftest import assert_same_state
from omegaconf import OmegaConf

import sac.buffer
import sac.run_state
import sac.signals
import sac.trainer
from sac.checkpoint import load_checkpoint, step_checkpoints
from sac.errors import SACError
from sac.train import train
from sac.trainer import Trainer

SMALL = [
    "agent.warmup_steps=100",
    "eval_every=0",
    "eval_episodes=1",
    "log_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
]


def _run(make_cfg, run_dir, *overrides):
    """What `sac-train <overrides>` does, minus Hydra's process: compose, then train()."""
    cfg = make_cfg(*SMALL, *overrides)
    return train(cfg, run_dir, [*SMALL, *overrides])


@pytest.mark.slow
def test_resuming_twice_from_one_checkpoint_is_bit_identical(make_cfg, tmp_path):
    _run(
        make_cfg, tmp_path / "orig", "total_steps=300", "checkpoint_every=150", "keep_checkpoints=0"
    )
    ckpt = tmp_path / "orig" / "checkpoints" / "step_0000000150.pt"
    actors, buffers = [], []
    for name in ("a", "b"):
        shutil.copytree(tmp_path / "orig", tmp_path / name)
        summary = _run(make_cfg, tmp_path / name, "total_steps=500", f"resume={ckpt}")
        assert summary["steps"] == 500
        state = load_checkpoint(tmp_path / name)
        actors.append(state["agent"]["actor"])
        buffers.append(state["buffer"])
        assert state["counters"]["updates"] == 400  # 50 before the checkpoint's step 150 ...
    for k in actors[0]:
        torch.testing.assert_close(actors[0][k], actors[1][k], rtol=0, atol=0)
    assert buffers[0]["size"] == 500
    torch.testing.assert_close(buffers[0]["obs"], buffers[1]["obs"], rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["agent.obs_norm=true"]], ids=["sac", "obs-norm"])
def test_restore_puts_back_exactly_what_the_checkpoint_holds(make_cfg, tmp_path, options):
    _run(make_cfg, tmp_path, "total_steps=500", "checkpoint_every=0", "env.num_envs=2", *options)
    saved = load_checkpoint(tmp_path, mmap=False)
    trainer = Trainer(
        make_cfg(*SMALL, "total_steps=700", "env.num_envs=2", *options),
        tmp_path,
        resume_from=step_checkpoints(tmp_path / "checkpoints")[-1],
    )
    try:
        # After the trainer is built (its envs reset, its logger opened), nothing has drawn
        # from a generator or touched a tensor the checkpoint holds.
        restored = trainer.state()
        for part in ("agent", "buffer", "rng", "counters", "spaces"):
            assert_same_state(saved[part], restored[part], part)
        assert saved["counters"]["env_steps"] == 500 and saved["counters"]["updates"] == 400
        assert saved["counters"]["env_episodes"] == [1, 1]  # Pendulum: 200 steps an episode
        assert set(saved["rng"]) >= {"torch", "numpy", "python", "action"}
        # ... and the live objects are the checkpoint's (not just what state() reports)
        assert (trainer.step, trainer.episodes, trainer.agent.num_updates) == (500, 2, 400)
        assert_same_state(saved["rng"]["torch"], torch.get_rng_state(), "torch rng")
        np.testing.assert_array_equal(
            np.random.get_state()[1], saved["rng"]["numpy"]["keys"].numpy()
        )
        assert_same_state(saved["buffer"]["generator"], trainer.buffer.generator.get_state())
        torch.testing.assert_close(trainer.buffer.obs[:500], saved["buffer"]["obs"])
        for name, p in trainer.agent.critic.named_parameters():
            torch.testing.assert_close(p, saved["agent"]["critic"][name], rtol=0, atol=0)
        if options:  # the live statistics are the saved ones, bit for bit, dtypes included
            assert saved["agent"]["obs_norm"]["count"].item() == 500
            for name, t in trainer.agent.obs_norm.state_dict().items():
                want = saved["agent"]["obs_norm"][name]
                assert t.dtype == want.dtype and torch.equal(t, want), name
        else:
            assert trainer.agent.obs_norm is None and saved["agent"]["obs_norm"] is None
    finally:
        trainer.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [
        ["env.id=Pendulum-v1"],  # 200-step episodes: the checkpoint at 400 ends one
        # terminating: 5-step episodes in 2 envs (step 400 ends the 40th of each)
        ["env.id=CountEnv-v0", "+env.kwargs={length:5,count_episodes:false}", "env.num_envs=2"],
        # the observation statistics resume as saved, and go on as in the whole run
        ["env.id=Pendulum-v1", "agent.obs_norm=true"],
    ],
    ids=["pendulum", "terminating-2-envs", "pendulum-obs-norm"],
)
def test_a_run_resumed_where_episodes_end_equals_the_uninterrupted_run(make_cfg, tmp_path, env):
    """Step for step, on CPU: the same agent, buffer, RNG states and logged metrics."""
    common = [*env, "checkpoint_every=200", "keep_checkpoints=0"]
    _run(make_cfg, tmp_path / "whole", *common, "total_steps=600")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoints" / "step_0000000400.pt"
    assert (
        _run(make_cfg, tmp_path / "cut", *common, "total_steps=600", f"resume={ckpt}")["steps"]
        == 600
    )
    whole, cut = (load_checkpoint(tmp_path / d, mmap=False) for d in ("whole", "cut"))
    for part in ("agent", "buffer", "rng", "counters"):
        assert_same_state(whole[part], cut[part], part)
    rows = [_metric_rows(tmp_path / d / "metrics.csv") for d in ("whole", "cut")]
    assert rows[0] == rows[1] and any("losses/critic" in r for r in rows[0])


def _metric_rows(path):
    """metrics.csv's rows without its clock columns (time, throughput)."""
    with open(path) as f:
        return [
            {k: v for k, v in row.items() if v and k not in ("time", "perf/sps")}
            for row in csv.DictReader(f)
        ]


def test_a_resume_loads_the_checkpoint_to_the_cpu_and_copies_it_once(
    make_cfg, tmp_path, monkeypatch
):
    """On a GPU, loading to the device would hold the saved buffer there beside the
    preallocated one: twice its memory."""
    _run(make_cfg, tmp_path, "total_steps=200")
    places = []
    real_load = sac.run_state.load_checkpoint

    def load(path, map_location="cpu", mmap=True):
        places.append(map_location)
        return real_load(path, map_location=map_location, mmap=mmap)

    monkeypatch.setattr(sac.run_state, "load_checkpoint", load)
    Trainer(make_cfg(*SMALL, "total_steps=300"), tmp_path, resume_from=tmp_path).close()
    assert places == ["cpu"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_resume_needs_the_buffers_memory_once(make_cfg, tmp_path):
    # a full buffer of 50k transitions (random actions only: no updates), far larger than the
    # networks
    full = ["device=cuda", "agent.buffer_size=50000", "agent.warmup_steps=50000"]
    _run(make_cfg, tmp_path, *full, "total_steps=50000")
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(make_cfg(*SMALL, *full, "total_steps=60000"), tmp_path, resume_from=tmp_path)
    peak = torch.cuda.max_memory_allocated() - before
    buffer_bytes = sum(getattr(trainer.buffer, n).nbytes for n in sac.buffer._FIELDS)
    assert len(trainer.buffer) == 50000
    trainer.close()
    assert buffer_bytes <= peak < 1.5 * buffer_bytes


@pytest.mark.slow
def test_auto_resume_in_a_run_directory_that_has_a_checkpoint(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=200")
    summary = _run(make_cfg, tmp_path, "total_steps=300")  # same dir, same command + more steps
    assert summary["steps"] == 300 and summary["episodes"] == 1
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    logged = [int(r["step"]) for r in rows if r["perf/sps"]]
    assert logged == [100, 200, 300]  # appended, nothing duplicated or missing


@pytest.mark.slow
def test_resume_drops_metrics_logged_after_the_checkpoint(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=400", "checkpoint_every=200", "keep_checkpoints=0")
    ckpt = tmp_path / "checkpoints" / "step_0000000200.pt"
    _run(make_cfg, tmp_path, "total_steps=400", f"resume={ckpt}", "checkpoint_every=0")
    # the step-400 checkpoint of the abandoned branch was moved aside, not left to pass for
    # the newest (and the resumed run wrote its own)
    (aside,) = tmp_path.glob("previous_*")
    assert [p.name for p in aside.iterdir()] == ["step_0000000400.pt"]
    assert load_checkpoint(tmp_path)["counters"]["env_steps"] == 400
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["perf/sps"]] == [100, 200, 300, 400]
    assert [int(r["step"]) for r in rows if r["train/episode_return"]] == [200, 400]


def test_fresh_run_moves_stale_metrics_aside(make_cfg, tmp_path):
    (tmp_path / "metrics.csv").write_text("step,time\n5,0.1\n")  # a run that died early
    _run(make_cfg, tmp_path, "total_steps=200")
    (aside,) = tmp_path.glob("previous_*")
    assert (aside / "metrics.csv").read_text() == "step,time\n5,0.1\n"
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["perf/sps"]] == [100, 200]


@pytest.mark.slow
def test_effective_config_is_written_on_resume(make_cfg, tmp_path):
    _run(make_cfg, tmp_path / "run", "total_steps=200", "agent.gamma=0.9")
    train(make_cfg("total_steps=300"), tmp_path / "run", ["total_steps=300"])  # auto resume
    effective = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert (effective.agent.gamma, effective.total_steps) == (0.9, 300)


@pytest.mark.slow
def test_resume_never_starts_afresh_and_keeps_old_outputs(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=200")
    summary = _run(make_cfg, tmp_path, "total_steps=200", "resume=never")
    assert summary["steps"] == 200
    (aside,) = tmp_path.glob("previous_*")
    assert (aside / "checkpoints" / "last.pt").is_file() and (aside / "metrics.csv").is_file()


def test_resume_refuses_changes_to_the_experiment(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=200")
    with pytest.raises(SACError, match=r"cannot change agent\.gamma=0\.5"):
        _run(make_cfg, tmp_path, "total_steps=300", "agent.gamma=0.5")
    with pytest.raises(SACError, match="cannot change env=halfcheetah"):
        _run(make_cfg, tmp_path, "env=halfcheetah")


@pytest.mark.slow
def test_resume_takes_the_stored_config_not_the_defaults(make_cfg, tmp_path):
    _run(make_cfg, tmp_path / "run", "total_steps=200", "agent.gamma=0.9", "seed=4")
    cfg = make_cfg("total_steps=300", f"resume={tmp_path / 'run'}")
    summary = train(cfg, tmp_path / "run", ["total_steps=300", f"resume={tmp_path / 'run'}"])
    assert summary["steps"] == 300
    stored = load_checkpoint(tmp_path / "run")["config"]
    assert (stored["agent"]["gamma"], stored["seed"], stored["total_steps"]) == (0.9, 4, 300)


@pytest.mark.slow
def test_resume_skips_a_damaged_newest_checkpoint(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=300", "checkpoint_every=100", "keep_checkpoints=0")
    newest = tmp_path / "checkpoints" / "step_0000000300.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    summary = _run(make_cfg, tmp_path, "total_steps=300")
    assert summary["steps"] == 300  # continued from step 200
    (aside,) = tmp_path.glob("previous_*")  # the damaged file is kept, out of the way
    assert [p.name for p in aside.iterdir()] == ["step_0000000300.pt"]
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["perf/sps"]] == [100, 200, 300]  # not from 0


def test_resume_errors(make_cfg, tmp_path):
    with pytest.raises(SACError, match="no such checkpoint"):
        _run(make_cfg, tmp_path, f"resume={tmp_path / 'nothing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SACError, match="no checkpoint"):
        _run(make_cfg, tmp_path, f"resume={tmp_path / 'empty'}")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(SACError, match="no usable checkpoint"):
        _run(make_cfg, tmp_path, f"resume={bad}")


def test_resume_refuses_a_checkpoint_for_other_shapes(make_cfg, tmp_path):
    _run(make_cfg, tmp_path / "pendulum", "total_steps=200")
    cfg = make_cfg(*SMALL, "env.id=CountEnv-v0", "total_steps=300")
    with pytest.raises(SACError, match=r"obs shape \(3,\) and 1 action dims"):
        Trainer(
            cfg, tmp_path / "count", resume_from=tmp_path / "pendulum" / "checkpoints" / "last.pt"
        )


@pytest.mark.slow
def test_keep_last_k_checkpoints(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=500", "checkpoint_every=100", "keep_checkpoints=2")
    names = [p.name for p in step_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step_0000000400.pt", "step_0000000500.pt"]


@pytest.mark.slow
def test_without_buffer_the_checkpoint_is_small_and_resume_still_works(make_cfg, tmp_path):
    _run(make_cfg, tmp_path, "total_steps=200", "save_buffer=false")
    assert "buffer" not in load_checkpoint(tmp_path)
    assert _run(make_cfg, tmp_path, "total_steps=300")["steps"] == 300


@pytest.mark.slow
def test_non_finite_losses_stop_the_run_with_the_last_good_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg(
        *SMALL,
        "env.id=CountEnv-v0",
        "+env.kwargs.length=50",
        "+env.kwargs.nan_after=250",
        "total_steps=1000",
        "checkpoint_every=200",
    )
    with pytest.raises(SACError, match=r"non-finite losses/critic \(nan\).*step_0000000200"):
        Trainer(cfg, tmp_path).train()
    assert [p.name for p in step_checkpoints(tmp_path / "checkpoints")] == ["step_0000000200.pt"]
    assert torch.isfinite(load_checkpoint(tmp_path)["agent"]["actor"]["net.0.weight"]).all()


@pytest.mark.slow
def test_failed_periodic_save_is_reported_and_training_goes_on(
    make_cfg, tmp_path, monkeypatch, caplog
):
    real_save = sac.trainer.save_checkpoint
    calls = []

    def flaky(state, path, keep=0):
        calls.append(path.name)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real_save(state, path, keep)

    monkeypatch.setattr(sac.trainer, "save_checkpoint", flaky)
    summary = _run(make_cfg, tmp_path, "total_steps=300", "checkpoint_every=100")
    assert summary["steps"] == 300
    assert "No space left on device" in caplog.text and "training continues" in caplog.text
    assert [p.name for p in step_checkpoints(tmp_path / "checkpoints")] == [
        "step_0000000200.pt",
        "step_0000000300.pt",
    ]


@pytest.mark.slow
def test_failed_final_save_goes_to_a_rescue_copy(make_cfg, tmp_path, monkeypatch):
    real_save = sac.trainer.save_checkpoint
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def fail_in_run_dir(state, path, keep=0):
        if tmp_path / "run" in path.parents:
            raise OSError(30, "Read-only file system")
        real_save(state, path, keep)

    monkeypatch.setattr(sac.trainer, "save_checkpoint", fail_in_run_dir)
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(SACError, match=r"saved it to .*sac-rescue-run"):
        _run(make_cfg, tmp_path / "run", "total_steps=200")
    rescued = tmp_path / "tmp" / "sac-rescue-run"
    assert load_checkpoint(rescued)["counters"]["env_steps"] == 200


def test_second_sigint_handler_exits_at_once(make_cfg, tmp_path, monkeypatch):
    trainer = Trainer(make_cfg(*SMALL, "total_steps=100"), tmp_path)
    exits = []
    monkeypatch.setattr(sac.signals.os, "_exit", exits.append)
    trainer.stop._on_signal(signal.SIGTERM, None)
    assert trainer.stop.signal == signal.SIGTERM and exits == []  # first: stop after this step
    trainer.stop._on_signal(signal.SIGINT, None)
    assert exits == [130]  # second interrupt: out now, no checkpoint
    trainer.close()
