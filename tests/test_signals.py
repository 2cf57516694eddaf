"""Real processes, real signals: SIGTERM/SIGINT/SIGUSR2 checkpoint and exit (SIGUSR2 then goes
on to the handler installed before, submitit's); SIGKILL at random moments always leaves a run
that resumes."""

import csv
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli

from sac.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

FAST = [
    "agent.warmup_steps=300",
    "eval_every=0",
    "eval_episodes=1",
    "log_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
]


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sac-train"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [str(exe), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Block until metrics.csv has a row at or past `step`."""
    deadline = time.time() + timeout
    path = run_dir / "metrics.csv"
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        if path.exists():
            steps = [int(r["step"]) for r in csv.DictReader(path.open()) if r["perf/sps"]]
            if steps and steps[-1] >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout}s")


# SIGUSR2 (SLURM's warning before the time limit) without a handler of its own acts as SIGTERM.
HAS_USR2 = hasattr(signal, "SIGUSR2")
STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, *([signal.SIGUSR2] if HAS_USR2 else [])]


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_signal_checkpoints_and_the_resumed_run_continues(tmp_path, sig):
    proc = _start(tmp_path, *FAST, "total_steps=1500", "checkpoint_every=0", "hydra.run.dir=run")
    run = tmp_path / "run"
    _wait_for_step(run, 400, proc)
    sent = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert time.time() - sent < 30
    assert proc.returncode == 128 + sig, out
    assert "Traceback" not in out and f"resume with: sac-train resume={run.resolve()}" in out
    state = load_checkpoint(run)
    stopped = state["counters"]["env_steps"]
    assert 400 <= stopped < 1500 and state["buffer"]["size"] == stopped

    proc = run_cli(["sac-train", "resume=run"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = load_checkpoint(run)
    assert state["counters"]["env_steps"] == 1500 and state["buffer"]["size"] == 1500
    assert state["counters"]["updates"] == 1200
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["perf/sps"]] == list(range(100, 1501, 100))
    episodes = [int(r["step"]) for r in rows if r["train/episode_return"]]
    assert episodes == sorted(set(episodes))  # none logged twice


# In-process runs share pytest's process: one torch thread keeps them quick on a busy machine.
ONE_THREAD = ["torch_threads=1"]


def _signal_self_at_step(
    run_dir: Path, step: int, sigs: tuple[int, ...], sent_at: list[int] | None = None
) -> threading.Thread:
    """A thread that sends `sigs` to this process once metrics.csv reaches `step` (appending
    the last logged step to `sent_at`); Python runs the handlers in the main thread, in train()."""

    def send() -> None:
        deadline = time.time() + 60
        path = run_dir / "metrics.csv"
        while time.time() < deadline:
            steps = [int(r["step"]) for r in csv.DictReader(path.open())] if path.exists() else []
            if steps and max(steps) >= step:
                for sig in sigs:
                    os.kill(os.getpid(), sig)
                if sent_at is not None:
                    sent_at.append(max(steps))
                return
            time.sleep(0.02)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not HAS_USR2, reason="no SIGUSR2 on this platform")
@pytest.mark.parametrize("also_sigterm", [False, True], ids=["SIGUSR2", "SIGUSR2+SIGTERM"])
def test_sigusr2_checkpoints_then_hands_on_to_the_handler_installed_before(
    tmp_path, make_cfg, also_sigterm
):
    """A SLURM preemption may bring SIGTERM with SIGUSR2: submitit's handler still gets its call."""
    from sac.train import train

    run = tmp_path / "run"
    seen = []

    def previous(signum, frame):
        # What submitit's handler finds when it is called: the run stopped and checkpointed.
        seen.append((signum, load_checkpoint(run)["counters"]["env_steps"]))
        raise SystemExit(-1)  # submitit requeues the job, then exits like this

    old = signal.signal(signal.SIGUSR2, previous)
    try:
        sigs = (signal.SIGUSR2, signal.SIGTERM) if also_sigterm else (signal.SIGUSR2,)
        sender = _signal_self_at_step(run, 400, sigs)
        with pytest.raises(SystemExit):
            train(make_cfg(*FAST, *ONE_THREAD, "total_steps=100000", "checkpoint_every=0"), run)
        sender.join()
        assert signal.getsignal(signal.SIGUSR2) is previous  # ours was taken down first
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert len(seen) == 1 and seen[0][0] == signal.SIGUSR2
    assert 400 <= seen[0][1] < 100000
    assert load_checkpoint(run)["buffer"]["size"] == seen[0][1]  # for an exact resume


@pytest.mark.skipif(not HAS_USR2, reason="no SIGUSR2 on this platform")
def test_an_ignored_sigusr2_stays_ignored(tmp_path, make_cfg):
    from sac.train import train

    run = tmp_path / "run"
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        sent_at: list[int] = []
        sender = _signal_self_at_step(run, 400, (signal.SIGUSR2,), sent_at)
        summary = train(make_cfg(*FAST, *ONE_THREAD, "total_steps=1000"), run)
        sender.join()
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert sent_at and sent_at[0] < 1000  # it came while the run was going
    assert summary["interrupted_by"] is None and summary["steps"] == 1000


def test_second_sigint_exits_at_once_leaving_the_last_checkpoint_intact(tmp_path):
    # Big networks and 20 updates per step make each step take a few hundred ms, so the second
    # Ctrl-C surely lands while the first one is still finishing its step.
    proc = _start(
        tmp_path,
        *FAST,
        "agent.hidden_sizes=[1024,1024]",
        "agent.updates_per_step=20",
        "total_steps=100000",
        "checkpoint_every=100",
        "hydra.run.dir=run",
    )
    # Wait for the log line of step 300's checkpoint, not just its file: a Ctrl-C that lands
    # in save() after the rename ends the loop at once (no step left to finish), and a second
    # one could then arrive after the handlers are restored. After the line, step 301 runs
    # (the first with updates, hundreds of ms), and the first Ctrl-C lands in it.
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "checkpoint:" in line and "step_0000000300.pt" in line:
            break
    proc.send_signal(signal.SIGINT)
    for line in proc.stdout:  # wait until the first one has been taken
        seen.append(line)
        if "SIGINT received" in line:
            break
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=30)[0]
    assert proc.returncode == 130 and "Traceback" not in out
    assert "second interrupt, exiting now without a checkpoint" in out
    assert "stopped by SIGINT" not in out  # the graceful path did not run
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts[-1] == "step_0000000300.pt"  # nothing written after the signal ...
    assert load_checkpoint(tmp_path / "run")["counters"]["env_steps"] == 300  # ... and it loads
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))


def test_async_envs_sigterm_checkpoints_and_exits(tmp_path):
    proc = _start(
        tmp_path,
        *FAST,
        "env.num_envs=2",
        "env.vectorization=async",
        "total_steps=100000",
        "checkpoint_every=0",
        "hydra.run.dir=run",
    )
    _wait_for_step(tmp_path / "run", 600, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "Traceback" not in out, out
    assert "resume with: sac-train resume=" in out
    assert load_checkpoint(tmp_path / "run")["counters"]["env_steps"] >= 600


def test_sigkill_at_random_moments_always_leaves_a_resumable_run(tmp_path):
    rng = random.Random(1234)
    for trial in range(3):
        cwd = tmp_path / f"trial{trial}"
        cwd.mkdir()
        # checkpoints every 50 steps, buffer included, so many kills land mid-write
        proc = _start(cwd, *FAST, "total_steps=100000", "checkpoint_every=50", "hydra.run.dir=run")
        _wait_for_step(cwd / "run", 100, proc)
        time.sleep(rng.uniform(0.0, 3.0))
        proc.kill()
        proc.communicate()
        state = load_checkpoint(cwd / "run")
        killed_at = state["counters"]["env_steps"]
        resumed = run_cli(["sac-train", "resume=run", f"total_steps={killed_at + 100}"], cwd)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert load_checkpoint(cwd / "run")["counters"]["env_steps"] == killed_at + 100


def test_building_async_envs_leaves_this_processs_signal_handlers_alone():
    """AsyncVectorEnv builds one env in the calling process for its spaces; the workers'
    ignoring of stop signals must not happen there (an ignored SIGUSR2 is inherited, and the
    trainer then keeps ignoring it: no checkpoint before SLURM's time limit)."""
    from sac.envs import make_vector_env

    names = [s for s in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, s)]
    before = {s: signal.getsignal(getattr(signal, s)) for s in names}
    make_vector_env("Pendulum-v1", None, 2, "async").close()
    assert {s: signal.getsignal(getattr(signal, s)) for s in names} == before
