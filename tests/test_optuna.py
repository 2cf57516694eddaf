"""Tuning with hydra/sweeper=sac_optuna (hydra-optuna-sweeper), for real: the preset's search
space becomes the Optuna distributions docs/tuning.md lists; a 3-trial study on Pendulum trains
each trial into the sweep directory with the parameters the sampler chose, and Optuna's best
trial is the one with the best final evaluation return; a trial that fails is recorded as failed
and the study goes on; Ctrl-C stops the study, and the same command continues it.

The tests that need the plugin skip without it (pip install 'sac[optuna]')."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from hydra import compose, initialize_config_dir

from sac.config import config_dir, register_configs
from sac.train import missing_plugin

PLUGIN = "hydra_plugins.hydra_optuna_sweeper"
needs_plugin = pytest.mark.skipif(
    importlib.util.find_spec(PLUGIN) is None,
    reason="hydra-optuna-sweeper is not installed (pip install 'sac[optuna]')",
)

# Tiny trials: a few hundred Pendulum steps, small networks, one evaluation episode at the end.
TINY = [
    "total_steps=300",
    "agent.warmup_steps=100",
    "eval_every=0",
    "eval_episodes=1",
    "log_every=100",
    "checkpoint_every=300",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
    "torch_threads=1",
]
FIXED = {arg.split("=")[0] for arg in TINY}


def _study(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = ["sac-train", "-m", "hydra/sweeper=sac_optuna", "hydra.sweep.dir=study", *args]
    return run_cli(cmd, tmp_path, timeout=timeout)


def _overrides(trial: Path) -> dict:
    """A trial's overrides (the sampler's choices, then the command line's fixed values)."""
    overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides)}


def _final_eval(trial: Path) -> tuple[int, float]:
    """(step, eval/return_mean) of the last evaluation row of a trial's metrics.csv."""
    rows = [r for r in csv.DictReader((trial / "metrics.csv").open()) if r["eval/return_mean"]]
    return int(rows[-1]["step"]), float(rows[-1]["eval/return_mean"])


def _steps(trial: Path) -> list[int]:
    """The steps of the training-metric rows of a trial's metrics.csv so far."""
    if not (trial / "metrics.csv").exists():
        return []
    return [int(r["step"]) for r in csv.DictReader((trial / "metrics.csv").open()) if r["perf/sps"]]


def test_a_missing_plugin_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    for name in ("sac_optuna", "optuna"):
        assert missing_plugin([f"hydra/sweeper={name}"]) == (
            f"hydra/sweeper={name} needs the hydra-optuna-sweeper plugin; install it with "
            "pip install 'sac[optuna]'"
        )


@needs_plugin
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")  # optuna 2's SQLAlchemy use
def test_preset_is_the_documented_search_space():
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose("train", ["hydra/sweeper=sac_optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert (sweeper.n_trials, sweeper.n_jobs, sweeper.max_failure_rate) == (20, 1, 1.0)
    assert sweeper.storage is None
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed
    assert space == {
        "agent.actor_lr": LogUniformDistribution(1e-4, 3e-3),
        "agent.critic_lr": LogUniformDistribution(1e-4, 3e-3),
        "agent.tau": CategoricalDistribution([0.002, 0.005, 0.01, 0.02]),
        "agent.gamma": CategoricalDistribution([0.98, 0.99, 0.995]),
        "agent.batch_size": CategoricalDistribution([128, 256, 512]),
        "agent.hidden_sizes": CategoricalDistribution(["[256,256]", "[400,300]", "[256,256,256]"]),
        "agent.updates_per_step": CategoricalDistribution([0.5, 1, 2]),
        "agent.warmup_steps": CategoricalDistribution([1000, 5000, 10000]),
    }


@needs_plugin
@pytest.mark.slow
def test_three_trial_study_on_pendulum(tmp_path):
    proc = _study(tmp_path, "hydra.sweeper.n_trials=3", *TINY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    sweep = tmp_path / "study"
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in trials] == [f"{n}_Pendulum-v1_seed0" for n in range(3)]

    params, returns = [], []
    for trial in trials:
        assert (trial / "checkpoints" / "step_0000000300.pt").is_file()
        assert "done: {'steps': 300" in (trial / "train.log").read_text()
        step, value = _final_eval(trial)
        assert step == 300
        returns.append(value)
        # What the sampler chose: the preset's space less the keys fixed on the command line,
        # within their ranges, and written into the trial's composed config.
        chosen = {k: v for k, v in _overrides(trial).items() if k not in FIXED}
        assert set(chosen) == {
            "agent.actor_lr",
            "agent.critic_lr",
            "agent.tau",
            "agent.gamma",
            "agent.updates_per_step",
        }
        assert (
            1e-4 <= chosen["agent.actor_lr"] <= 3e-3 and 1e-4 <= chosen["agent.critic_lr"] <= 3e-3
        )
        assert chosen["agent.tau"] in (0.002, 0.005, 0.01, 0.02)
        assert chosen["agent.gamma"] in (0.98, 0.99, 0.995)
        assert chosen["agent.updates_per_step"] in (0.5, 1, 2)
        config = yaml.safe_load((trial / "config.yaml").read_text())
        for key, value in chosen.items():
            assert config["agent"][key.split(".")[1]] == value
        assert config["agent"]["batch_size"] == 32 and config["agent"]["hidden_sizes"] == [32, 32]
        params.append(chosen)
    assert len({tuple(sorted(p.items())) for p in params}) == 3

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(range(3), key=lambda i: returns[i])
    assert results["name"] == "optuna"
    assert results["best_value"] == pytest.approx(returns[best], rel=1e-12)
    assert results["best_params"] == params[best]


@needs_plugin
@pytest.mark.slow
def test_a_failed_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    # batch_size 0 is bad input: those trials fail with sac-train's error line, the others train.
    tiny = [a for a in TINY if not a.startswith("agent.batch_size=")]
    proc = _study(tmp_path, "hydra.sweeper.n_trials=3", *tiny, "agent.batch_size=choice(0,32)")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    sweep = tmp_path / "study"
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    failed = [t for t in trials if _overrides(t)["agent.batch_size"] == 0]
    trained = [t for t in trials if _overrides(t)["agent.batch_size"] == 32]
    assert failed and trained  # the sampler's seed (0) draws both
    error = "sac-train: error: agent.batch_size must be > 0"
    assert out.count(f"Failed experiment: {error}") == len(failed)
    for trial in failed:
        assert error in (trial / "train.log").read_text()
        assert not (trial / "checkpoints").exists()
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["agent.batch_size"] == 32
    assert results["best_value"] == pytest.approx(max(_final_eval(t)[1] for t in trained))


@needs_plugin
@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_stops_the_study_and_the_same_command_continues_it(tmp_path):
    args = ["-m", "hydra/sweeper=sac_optuna", "hydra.sweep.dir=study", "hydra.sweeper.n_trials=1"]
    args += [*(a for a in TINY if not a.startswith("total_steps=")), "total_steps=800"]
    exe = Path(sys.executable).parent / "sac-train"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": "egl"}
    log = tmp_path / "study.log"
    with log.open("w") as f:
        proc = subprocess.Popen([str(exe), *args], cwd=tmp_path, env=env, stdout=f, stderr=f)
    trial = tmp_path / "study" / "0_Pendulum-v1_seed0"
    deadline = time.time() + 120
    while not _steps(trial) or _steps(trial)[-1] < 200:  # the first trial is learning
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    out = log.read_text()
    assert proc.returncode == 128 + signal.SIGINT, out
    assert "Traceback" not in out
    assert "the study stops here; to continue it, run the same command with " in out
    assert "hydra.sweep.dir=study\n" in out
    assert not (tmp_path / "study" / "optimization_results.yaml").exists()

    proc = run_cli(["sac-train", *args], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"resumed from {trial.resolve()}/checkpoints/step_" in proc.stdout
    results = yaml.safe_load((tmp_path / "study" / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(_final_eval(trial)[1], rel=1e-12)
    assert _final_eval(trial)[0] == 800
