"""experiments/aggregate.py and summarize_runs.py on synthetic run directories with known
returns."""

import csv
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow
pytest.importorskip("rliable")

COLUMNS = ["step", "time", "train/episode_return", "eval/return_mean", "eval/return_std"]
SUCCESS = "eval/success_rate"


def fake_run(root, env, variant, seed, returns, success=None, every=1000):
    """A run directory as sac-train leaves it: config.yaml and metrics.csv with eval rows (an
    evaluation every `every` steps, with success rates where given)."""
    run = root / f"{env}_{variant}_seed{seed}"
    run.mkdir(parents=True)
    cfg = {"env": {"id": env}, "agent": {"name": variant}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, [*COLUMNS, SUCCESS])
        w.writeheader()
        for i, r in enumerate(returns):
            row = {"step": (i + 1) * every, "time": i, "eval/return_mean": r, "eval/return_std": 1}
            w.writerow(row if success is None else {**row, SUCCESS: success[i]})
    return run


def test_aggregate_writes_iqm_table_thresholds_and_plot(tmp_path):
    fake_run(tmp_path, "Hopper-v5", "sac", 0, [10, 100])
    fake_run(tmp_path, "Hopper-v5", "sac", 1, [20, 200])
    fake_run(tmp_path, "Hopper-v5", "sac", 2, [30, 600])
    fake_run(tmp_path, "Hopper-v5", "crossq", 0, [50, 1000])
    fake_run(tmp_path, "Hopper-v5", "crossq", 1, [70, 1200])
    fake_run(tmp_path, "InvertedPendulum-v5", "sac", 0, [1000, 900])
    out = tmp_path / "res" / "learning"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "experiments" / "aggregate.py"),
            str(tmp_path),
            "--out",
            str(out),
            "--budgets",
            "1000",
            "2000",
            "--reps",
            "500",
            "--threshold",
            "InvertedPendulum-v5=1000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = out.with_suffix(".md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:4]): line for line in table.splitlines()}
    sac_2k = rows[("Hopper-v5", "sac", "2000")]
    # 3 seeds: the IQM is their mean (300); the bootstrap CI lies within the seeds' range
    assert (
        "| 3 | 300 [" in sac_2k
        and "| 300 +- 265 |" in sac_2k
        and "0: 100, 1: 200, 2: 600" in sac_2k
    )
    low, high = (float(x) for x in sac_2k.split("[")[1].split("]")[0].split(","))
    assert 100 <= low < 300 < high <= 600
    assert "| 2 | 1100 [" in rows[("Hopper-v5", "crossq", "2000")]
    assert "2613 +- 991 (Tianshou" not in table  # published numbers only at their budgets
    assert "| InvertedPendulum-v5 | sac | 1000 | 0 | 1000 | no |" in table  # reached, not held
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_aggregate_without_runs_says_so(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "aggregate.py"), str(tmp_path), "--out", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no run with evaluation rows" in proc.stderr


def test_summarize_runs_writes_final_returns_success_rates_and_the_curve(tmp_path):
    a = fake_run(tmp_path, "Push-v4", "sac", 0, [-50, -40, -30, -9], [0, 0.1, 0.4, 0.9], 500)
    b = fake_run(tmp_path, "Push-v4", "sac", 1, [-49, -20], [0.05, 0.7], 500)
    out = tmp_path / "res" / "push.md"
    cmd = [sys.executable, str(REPO / "experiments" / "summarize_runs.py"), str(a), str(b)]
    proc = subprocess.run(
        [*cmd, "--threshold", "-25", "--every", "1000", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    table = out.read_text()
    assert table == proc.stdout.rstrip("\n") + "\n"
    assert (
        "| Push-v4_sac_seed0 | Push-v4 | 0 | 2000 | -9.0 +- 1.0 | 0.90 | 2000 | 2000 | 3 |" in table
    )
    assert (
        "| Push-v4_sac_seed1 | Push-v4 | 1 | 1000 | -20.0 +- 1.0 | 0.70 | 1000 | 1000 | 1 |"
        in table
    )
    assert "mean over runs: -14.5 (std over runs 7.8, n=2)" in table
    assert "mean success rate over runs: 0.80 (std over runs 0.14, n=2)" in table
    # the curve: every 1000 steps up to the last evaluation of any run, "-" past a run's last
    assert "| run | 1k | 2k |" in table
    assert "| Push-v4_sac_seed0 | -40.0 (0.10) | -9.0 (0.90) |" in table
    assert "| Push-v4_sac_seed1 | -20.0 (0.70) | - |" in table
    bad = subprocess.run([*cmd, "--every", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--every 0: give a number of env steps > 0" in bad.stderr
