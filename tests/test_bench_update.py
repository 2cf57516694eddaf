"""experiments/bench_update.py runs the real update and reports its time per update."""

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "experiments" / "bench_update.py"


@pytest.mark.slow
def test_bench_update_prints_the_time_per_update():
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "bench_update.py"), "--hidden", "16",
         "--warmup", "2", "--updates", "3", "--repeats", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    match = re.search(
        r"update \(1 per call\): median ([\d.]+) ms \(min ([\d.]+), max ([\d.]+);", proc.stdout
    )
    assert match, proc.stdout
    median, low, high = map(float, match.groups())
    assert 0 < low <= median <= high
    assert "2 blocks of 3" in proc.stdout and "2x16" in proc.stdout


@pytest.mark.slow
def test_bench_update_vs_another_checkout_prints_paired_ratios(tmp_path):
    script = [sys.executable, str(REPO / "experiments" / "bench_update.py"), "--hidden", "16",
              "--warmup", "2", "--updates", "3", "--repeats", "4"]  # fmt: skip
    proc = subprocess.run([*script, "--vs", str(REPO)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"update of {re.escape(str(REPO))}: median [\d.]+ ms", proc.stdout)
    match = re.search(r"A/B: median paired ratio ([\d.]+) \(quartiles ([\d.]+)-([\d.]+), 4 pairs",
                      proc.stdout)  # fmt: skip
    assert match, proc.stdout
    ratio, low, high = map(float, match.groups())
    assert 0 < low <= ratio <= high

    # A folder without the package is refused in one line, not timed as this checkout again.
    proc = subprocess.run([*script, "--vs", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode != 0
    assert f"--vs {tmp_path}: no sac package there" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bench_update_times_updates_made_k_at_a_time_against_one_at_a_time():
    script = [sys.executable, str(SCRIPT), "--hidden", "16", "--warmup", "3", "--updates", "6",
              "--repeats", "2"]  # fmt: skip
    proc = subprocess.run([*script, "--per-call", "3", "1"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"update \(3 per call\): median [\d.]+ ms .*2 blocks of 6", proc.stdout)
    assert re.search(r"update \(1 per call\): median [\d.]+ ms", proc.stdout)
    assert re.search(r"A/B: median paired ratio [\d.]+ .*2 pairs; A = 3 per call", proc.stdout)
    for bad in (["0"], ["1", "2", "3"]):
        proc = subprocess.run([*script, "--per-call", *bad], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert proc.returncode == 2 and "--per-call takes one or two values" in proc.stderr


def _bench_update_module(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    spec = importlib.util.spec_from_file_location("bench_update", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_checkout_imports_the_other_package_and_puts_ours_back(tmp_path, monkeypatch):
    other = tmp_path / "other"
    shutil.copytree(REPO / "sac", other / "sac", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "sac" / "agent.py", "a") as f:
        f.write("\nMARK = 'the other checkout'\n")
    module = _bench_update_module(monkeypatch)
    ours = sys.modules["sac.agent"]
    sac_cls, batch_cls, config_cls, updater_fn = module.load_checkout(str(other))
    other_globals = sac_cls.update.__globals__  # the other sac.agent's namespace
    assert other_globals.get("MARK") == "the other checkout"
    assert Path(other_globals["__file__"]).resolve().parent == (other / "sac").resolve()
    assert sac_cls is not ours.SAC and batch_cls is not ours.Batch
    assert config_cls is not ours.AgentConfig
    assert Path(updater_fn.__globals__["__file__"]).parent.resolve() == (other / "sac").resolve()
    assert sys.modules["sac.agent"] is ours  # this checkout's modules are back

    # A folder that merely contains this checkout (or has no sac/) would fall back to the
    # installed package: refused instead of timing this checkout against itself.
    for root in (REPO.parent, tmp_path):
        with pytest.raises(SystemExit, match="no sac package there"):
            module.load_checkout(str(root))


def test_agent_options_are_read_as_hydra_reads_overrides(monkeypatch):
    module = _bench_update_module(monkeypatch)
    assert module.agent_option("actor_batch_norm=false") == ("actor_batch_norm", False)
    assert module.agent_option("critic_dropout=0.01") == ("critic_dropout", 0.01)
    assert module.agent_option("critic_norm=layer") == ("critic_norm", "layer")
    for bad, why in [
        ("critic_norm", "expected KEY=VALUE"),
        ("batch_size=64", "set it with --batch-size"),
        ("critic_normm=layer", "not an AgentConfig option"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            module.agent_option(bad)
