"""experiments/aggregate.py on synthetic run directories with known returns."""

import csv
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow
pytest.importorskip("rliable")

COLUMNS = ["step", "time", "train/episode_return", "eval/return_mean", "eval/return_std"]


def fake_run(root, env, variant, seed, returns):
    """A run directory as sac-train leaves it: config.yaml and metrics.csv with eval rows."""
    run = root / f"{env}_{variant}_seed{seed}"
    run.mkdir(parents=True)
    cfg = {"env": {"id": env}, "agent": {"name": variant}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for i, r in enumerate(returns):
            w.writerow(
                {"step": (i + 1) * 1000, "time": i, "eval/return_mean": r, "eval/return_std": 1}
            )
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
