"""Sweeps through Hydra's launcher plugins, for real: the presets of conf/hydra/launcher/ compose
(and the SLURM one becomes the sbatch flags it promises), a 2-run sweep trains both runs through
submitit's local executor and through joblib, bad input in a job comes back as one line, and a
submitit job that gets SIGUSR2 checkpoints, is requeued by submitit and resumes from its
checkpoint in the same run directory.

Each test skips when its plugin is not installed (pip install 'sac[slurm]' / 'sac[joblib]')."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sac.checkpoint import load_checkpoint
from sac.config import config_dir, register_configs
from sac.train import LAUNCHER_PLUGINS, missing_plugin

# A few hundred Pendulum steps with tiny networks, one torch thread per run: the runs of a
# sweep share the machine.
TINY = [
    "agent.warmup_steps=200",
    "eval_every=0",
    "eval_episodes=1",
    "log_every=100",
    "checkpoint_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
    "torch_threads=1",
]


def _plugin(launcher: str):
    """Skip unless the plugin behind hydra/launcher=`launcher` is installed."""
    return pytest.importorskip(f"hydra_plugins.{LAUNCHER_PLUGINS[launcher][0]}")


def _hydra_cfg(launcher: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose("train", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_preset_becomes_the_sbatch_flags_it_promises(tmp_path, monkeypatch):
    _plugin("slurm")
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    launcher = _hydra_cfg("slurm")
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition is None  # the cluster's default, unless overridden
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.max_num_timeout) == (720, 1, 10)

    # The sbatch script submitit would submit, given the preset as hydra-submitit-launcher hands
    # it over (SlurmLauncher.launch): its own keys as they are, the SLURM ones as slurm_<key>,
    # max_num_timeout to the executor. submitit wants to see `srun` before it writes one.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    params = OmegaConf.to_container(launcher)
    for key in ("_target_", "submitit_folder", "name", "max_num_timeout"):
        params.pop(key)
    params["partition"] = "gpu"  # hydra.launcher.partition=gpu
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(
        folder=tmp_path, cluster="slurm", slurm_max_num_timeout=launcher.max_num_timeout
    )
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    sbatch = executor._executor._make_submission_file_text("python -m sac.train", "x")
    for flag in (
        "--partition=gpu",
        "--time=720",
        "--gpus-per-node=1",
        "--cpus-per-task=4",
        "--mem=32GB",
        "--signal=USR2@300",
        "--requeue",
    ):
        assert f"#SBATCH {flag}\n" in sbatch, sbatch


def test_local_parallel_preset_composes():
    _plugin("local_parallel")
    launcher = _hydra_cfg("local_parallel")
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 4


def test_ray_preset_composes():
    _plugin("ray_cluster")
    launcher = _hydra_cfg("ray_cluster")
    assert launcher._target_.endswith("RayLauncher")
    assert launcher.ray.init.address is None and launcher.ray.remote.num_gpus == 0


def test_a_missing_plugin_is_one_line_naming_the_extra(tmp_path):
    missing = [n for n, (m, _, _) in LAUNCHER_PLUGINS.items() if not _installed(m)]
    if not missing:
        pytest.skip("every launcher plugin is installed")
    name = missing[0]
    extra = LAUNCHER_PLUGINS[name][2]
    proc = run_cli(["sac-train", "-m", f"hydra/launcher={name}", "seed=0,1"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"sac-train: error: {missing_plugin([f'hydra/launcher={name}'])}"
    ]
    assert f"pip install 'sac[{extra}]'" in proc.stderr and not (tmp_path / "runs").exists()


def test_installed_plugins_pass_the_check():
    for name, (module, _, _) in LAUNCHER_PLUGINS.items():
        if _installed(module):
            assert missing_plugin([f"hydra/launcher={name}"]) is None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{module}") is not None


# ------------------------------------------------------------------------------ real sweeps


def _steps(run_dir: Path) -> list[int]:
    """The steps of metrics.csv's training-metric rows."""
    rows = csv.DictReader((run_dir / "metrics.csv").open())
    return [int(r["step"]) for r in rows if r["perf/sps"]]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "local_parallel"])
def test_two_run_sweep_trains_both_runs(tmp_path, launcher):
    _plugin(launcher)
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "local_parallel" else []
    args = ["-m", f"hydra/launcher={launcher}", *extra, "seed=0,1", "total_steps=300", *TINY]
    proc = run_cli(["sac-train", *args], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    for seed in (0, 1):
        run = sweep / f"{seed}_Pendulum-v1_seed{seed}"
        assert _steps(run) == [100, 200, 300]
        state = load_checkpoint(run)
        assert state["counters"]["env_steps"] == 300 and state["config"]["seed"] == seed
        assert (run / "checkpoints" / "step_0000000300.pt").is_file()
        assert "done: {'steps': 300" in (run / "train.log").read_text()
    if launcher == "submitit_local":  # one job folder per run, each with its logs
        jobs = [p for p in (sweep / ".submitit").iterdir() if list(p.glob("*_0_log.out"))]
        assert len(jobs) == 2
        for job in jobs:
            assert "Job completed successfully" in _submitit_log(job)


@pytest.mark.slow
def test_bad_input_in_a_job_reaches_the_sweep_as_one_line(tmp_path):
    _plugin("submitit_local")
    args = ["-m", "hydra/launcher=submitit_local", "seed=0,1", "agent.batch_size=0", "device=cpu"]
    proc = run_cli(["sac-train", *args], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "UncompletedJobError" not in proc.stderr
    assert "Error executing job with overrides: ['seed=0', 'agent.batch_size=0'" in proc.stderr
    assert "\nsac-train: error: agent.batch_size must be > 0\n" in proc.stderr


def _submitit_log(job_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted(job_dir.glob("*_0_log.*")))


def _submitit_task_pids(folder: Path) -> list[int]:
    """Processes running a submitit job whose folder lies under `folder` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue  # not a process, or one that ended meanwhile
        if "submitit.core._submit" in cmdline and any(str(folder) in a for a in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(signal, "SIGUSR2") or not Path("/proc/self/cmdline").exists(),
    reason="needs SIGUSR2 and /proc",
)
def test_sigusr2_requeues_the_job_and_it_resumes_in_the_same_directory(tmp_path):
    _plugin("submitit_local")
    exe = Path(sys.executable).parent / "sac-train"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": "egl"}
    args = ["-m", "hydra/launcher=submitit_local", "seed=0", "total_steps=1000", *TINY]
    sweeper = subprocess.Popen(
        [str(exe), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # SIGUSR2 is what SLURM sends before the time limit (and on preemption); submitit's
        # local executor requeues the same way, by starting the job again with its pickle.
        deadline = time.time() + 300
        first = None
        while first is None and time.time() < deadline:
            assert sweeper.poll() is None, sweeper.stdout.read()
            first = next((tmp_path / "runs").glob("multirun/*/0_*/checkpoints/step_*.pt"), None)
            time.sleep(0.1)
        assert first is not None, "no checkpoint within 300 s"
        (task,) = _submitit_task_pids(tmp_path)
        os.kill(task, signal.SIGUSR2)
        out, _ = sweeper.communicate(timeout=300)
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
    assert sweeper.returncode == 0, out

    # ${now:} in hydra.sweep.dir was resolved once, at launch: the requeued job, started
    # seconds later, lands in the same sweep and run directory.
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    (run,) = [p for p in sweep.iterdir() if not p.name.startswith(".") and p.is_dir()]
    log = (run / "train.log").read_text()
    stopped = int(re.search(r"stopped by SIGUSR2 at step (\d+)", log).group(1))
    assert 100 <= stopped < 1000
    checkpoint = run / "checkpoints" / f"step_{stopped:010d}.pt"
    assert f"resumed from {checkpoint} at step {stopped}" in log
    assert "done: {'steps': 1000" in log
    state = load_checkpoint(run)
    assert state["counters"]["env_steps"] == 1000 and state["buffer"]["size"] == 1000
    assert _steps(run) == list(range(100, 1001, 100))  # each row once, across the requeue
    (job,) = [p for p in (sweep / ".submitit").iterdir() if list(p.glob("*_0_log.out"))]
    submitit_log = _submitit_log(job)
    assert "Requeued job" in submitit_log and "Job completed successfully" in submitit_log
