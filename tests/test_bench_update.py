"""experiments/bench_update.py runs the real update and reports its time per update."""

import re
import subprocess
import sys

from conftest import REPO


def test_bench_update_prints_the_time_per_update():
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "bench_update.py"), "--hidden", "16",
         "--warmup", "2", "--updates", "3", "--repeats", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"update: median ([\d.]+) ms \(min ([\d.]+), max ([\d.]+);", proc.stdout)
    assert match, proc.stdout
    median, low, high = map(float, match.groups())
    assert 0 < low <= median <= high
    assert "2 blocks of 3" in proc.stdout and "2x16" in proc.stdout


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
