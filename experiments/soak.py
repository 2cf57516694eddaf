"""Soak run: one long `sac-train` process under load, watched from outside. Samples its resident
memory (RSS, from /proc), the run directory's size on disk and the step it has reached, then
writes the samples, a plot and a summary: RSS should stay flat once the replay buffer is full,
disk bounded by keep_checkpoints, and env steps/s flat.

    python experiments/soak.py --out experiments/results/soak [--steps 300000] [-- overrides]

Defaults: Pendulum-v1 for 300k steps, a 100k-transition buffer (full from step 100k on, saved in
every checkpoint), a checkpoint every 10k steps, keep_checkpoints=3, an evaluation every 10k.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mib(pid: int) -> float | None:
    """The resident set size of process `pid` (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def disk_mib(run_dir: Path) -> float:
    """Bytes of the files under `run_dir` (each hard-linked file once: last.pt is a link)."""
    seen, total = set(), 0
    for p in run_dir.rglob("*"):
        try:
            st = p.stat()
        except FileNotFoundError:  # pruned or renamed while we looked
            continue
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total / 2**20


def last_step(run_dir: Path) -> int:
    """The newest step in metrics.csv (0 before its first row)."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return 0
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return int(rows[-1]["step"]) if rows else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--buffer", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, required=True, help="path prefix: .csv .png .md")
    parser.add_argument("overrides", nargs="*", help="more sac-train overrides")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="sac-soak-"))
    overrides = [
        "env=pendulum",
        f"total_steps={args.steps}",
        f"agent.buffer_size={args.buffer}",
        "checkpoint_every=10000",
        "keep_checkpoints=3",
        "save_buffer=true",
        "eval_every=10000",
        "log_every=2000",
        "device=cpu",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    exe = Path(sys.executable).parent / "sac-train"
    shown = [o for o in overrides if not o.startswith("hydra.run.dir=")]
    command = f"sac-train {' '.join(shown)}"  # as reported (the run dir is a temp dir)
    print(command, file=sys.stderr)
    proc = subprocess.Popen(
        [str(exe), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    start = time.monotonic()
    samples = []  # (seconds, step, rss MiB, disk MiB)
    while proc.poll() is None:
        rss = rss_mib(proc.pid)
        if rss is not None:
            samples.append((time.monotonic() - start, last_step(run_dir), rss, disk_mib(run_dir)))
        time.sleep(args.every)
    if proc.returncode != 0:
        sys.exit(f"sac-train failed with exit code {proc.returncode}; its run dir: {run_dir}")
    invocation = "python experiments/soak.py " + " ".join(sys.argv[1:])
    write(args.out, samples, run_dir, invocation, command, args.buffer)


def write(
    out: Path, samples: list, run_dir: Path, invocation: str, command: str, buffer: int
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "step", "rss_mib", "disk_mib"])
        w.writerows([f"{t:.1f}", s, f"{r:.1f}", f"{d:.2f}"] for t, s, r, d in samples)
    with open(run_dir / "metrics.csv") as f:
        sps = [(int(r["step"]), float(r["perf/sps"])) for r in csv.DictReader(f) if r["perf/sps"]]
    t, step, rss, disk = (np.array(x) for x in zip(*samples))
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    axes[0].plot(step, rss)
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(step, disk)
    axes[1].set_ylabel("run dir on disk (MiB)")
    axes[2].plot(*zip(*sps))
    axes[2].set_ylabel("env steps/s")
    axes[2].set_xlabel("env step")
    for ax in axes:
        ax.axvline(buffer, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    fig.suptitle("soak: " + command, fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)

    # the buffer is full, and the run is still training (its last samples, at the final step,
    # see the final evaluation, checkpoint and returns.png drawn)
    full = (step >= buffer) & (step < step.max())
    sps_steps, sps_values = (np.array(x) for x in zip(*sps))
    thirds = np.array_split(sps_values[sps_steps > buffer], 3)
    lines = [
        f"# Soak run ({time.strftime('%Y-%m-%d')}, 2-core CPU)",
        "",
        f"`{invocation}` ran `{command}`",
        f"for {t[-1] / 60:.1f} min; samples in `{out.name}.csv`, plot in "
        f"`{out.name}.png` (the dotted line: the buffer is full).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| RSS once the buffer is full (min / median / max, MiB) | {rss[full].min():.0f} / "
        f"{np.median(rss[full]):.0f} / {rss[full].max():.0f} |",
        f"| RSS growth from step {step[full][0]} to step {step[full][-1]} (MiB) | "
        f"{rss[full][-1] - rss[full][0]:+.1f} |",
        f"| RSS at the end (final evaluation, checkpoint and plot; MiB) | {rss[-1]:.0f} |",
        f"| run directory on disk, max and at the end (MiB) | {disk.max():.1f}, {disk[-1]:.1f} |",
        f"| checkpoints left | {len(list((run_dir / 'checkpoints').glob('step_*.pt')))} |",
        "| env steps/s over the full-buffer phase, medians of its thirds | "
        + " / ".join(f"{np.median(x):.0f}" for x in thirds)
        + " |",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
