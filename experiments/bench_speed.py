"""Training throughput of this project's SAC vs Stable-Baselines3 SAC, side by side.

Measures env steps per second AFTER warm-up: every measurement trains from scratch in a fresh
subprocess (`--worker sac|sb3`), runs `--warmup` env steps of random actions, then times a
window of `--steps` env steps, each with one policy action and one gradient update (batch 256,
2x256 MLPs, buffer 1e6, one env, same seed and torch thread count for both). Repeats alternate
the implementations (and rotate their order) so that machine noise hits all of them alike.

This project's SAC runs its real code path: a config composed with Hydra from conf/ and
`sac.trainer.Trainer(cfg, run_dir).train()`; the timing comes from the `perf/sps` rows the
trainer writes to metrics.csv (`log_every` divides both --warmup and --steps, so a row falls
exactly on the warm-up boundary and one on the end of the window; the final evaluation and
checkpoint come after the last row and are not timed). SB3 is timed with a callback at the
same boundaries. SB3 is the optional `bench` extra: pip install -e '.[bench]'.

    python experiments/bench_speed.py                       # HalfCheetah-v5, 3 repeats
    python experiments/bench_speed.py --threads 1 --sac-variants "env.num_envs=4"
    python experiments/bench_speed.py --untimed 1000 --sac-variants "compile=true"
    python experiments/bench_speed.py --sac-variants "matmul_precision=medium"
    python experiments/bench_speed.py --matmul-precision medium   # both at bf16 matmuls

`--untimed N` adds N learning steps between the warm-up and the window for every row (SB3
too): with compile=true the first updates compile (tens of seconds), which is a one-off cost
the window should not hold.

    python experiments/bench_speed.py --untimed 1000 --sb3-train-freq 4 \
        --sac-variants "compile=true" "compile=true updates_per_call=4"

A variant's upper-case NAME=VALUE tokens set the worker's environment instead: e.g. paired
rows of another checkout of this project (its `sac` package imported first) in one run:

    python experiments/bench_speed.py --untimed 1000 --sac-variants "compile=true" \
        "PYTHONPATH=/path/to/other/checkout" "PYTHONPATH=/path/to/other/checkout compile=true"

`--sb3-train-freq K` adds a row of SB3 with `train_freq=K, gradient_steps=K` (K env steps,
then K updates): the schedule of this project's `updates_per_call=K`. The ratio column stays
relative to SB3's default row (train_freq=1).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULT_TAG = "BENCH_RESULT "  # a worker prints its result as one JSON line after this tag
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BATCH_SIZE = 256
HIDDEN = [256, 256]
BUFFER_SIZE = 1_000_000
NOISY_LOAD = 0.25  # CPU cores used by others during a measurement above which the report warns
MAX_LOG_ROWS_IN_WINDOW = 20  # more metric rows than this in the window would distort SAC's time


@dataclasses.dataclass
class Measurement:
    """One timed window of one worker process."""

    impl: str  # "sac" or "sb3"
    overrides: list[str]  # extra Hydra overrides (sac variants), or SB3's train_freq=K
    sps: float  # env steps per second in the window
    steps: int  # env steps in the window
    seconds: float  # wall time of the window
    updates: int  # gradient updates in the window
    threads: int  # torch.get_num_threads() in the worker
    device: str
    other_load: float = math.nan  # CPU cores used by other processes while it ran (parent sets)
    fell_back: bool = False  # compile=true / cudagraphs=true failed and the run went eager


# --------------------------------------------------------------------------------- workers
def _set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def _sac_env_group(config_dir: str, env_id: str) -> str | None:
    """The conf/env/<group>.yaml whose env.id is `env_id`, if any (for its env.kwargs)."""
    from omegaconf import OmegaConf

    for path in sorted(Path(config_dir, "env").glob("*.yaml")):
        node = OmegaConf.load(path)
        if OmegaConf.select(node, "env.id") == env_id:
            return path.stem
    return None


def run_sac(args: argparse.Namespace) -> Measurement:
    """Train this project's SAC through Hydra + Trainer; read the window from metrics.csv."""
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir, register_configs
    from sac.trainer import Trainer

    _set_threads(args.threads)
    register_configs()
    group = _sac_env_group(config_dir(), args.env)
    overrides = [
        *([f"env={group}"] if group else []),
        f"env.id={args.env}",
        "env.num_envs=1",
        f"seed={args.seed}",
        f"device={args.device}",
        f"torch_threads={max(args.threads, 0)}",
        f"matmul_precision={args.matmul_precision}",
        f"total_steps={args.warmup + args.untimed + args.steps}",
        f"agent.warmup_steps={args.warmup}",
        f"agent.batch_size={BATCH_SIZE}",
        f"agent.buffer_size={BUFFER_SIZE}",
        f"agent.hidden_sizes=[{','.join(map(str, HIDDEN))}]",
        "agent.updates_per_step=1.0",
        "eval_every=0",  # 0: evaluate only at the end, after the timed window
        "eval_episodes=1",
        "checkpoint_every=0",  # 0: save only at the end, after the timed window
        f"log_every={_log_every(args.warmup, args.untimed, args.steps)}",
        "wandb.enabled=false",
        *args.overrides,  # the variant's own overrides win
    ]
    with initialize_config_dir(version_base="1.3", config_dir=config_dir(), job_name="bench"):
        cfg = compose(config_name="train", overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="bench_sac_") as tmp:
        trainer = Trainer(cfg, Path(tmp))
        device = str(trainer.device)
        trainer.train()
        steps, seconds, updates = _sac_window(Path(tmp) / "metrics.csv", args.warmup + args.untimed)
    import torch

    return Measurement(
        "sac", args.overrides, steps / seconds, steps, seconds, updates,
        torch.get_num_threads(), device,
        fell_back=(cfg.compile or cfg.cudagraphs) and not _runs_compiled(trainer),
    )  # fmt: skip


def _runs_compiled(trainer: Any) -> bool:
    """Whether the trainer's updates still run compiled (checkouts from before sac.compiled
    kept that on the agent)."""
    return getattr(trainer, "updater", trainer.agent).compiled


def _sac_window(metrics_csv: Path, warmup: int) -> tuple[int, float, int]:
    """(env steps, seconds, updates) from the first `perf/sps` row at or after the warm-up
    boundary to the last one; each row's SPS covers the steps since the previous row."""
    with metrics_csv.open(newline="") as f:
        rows = [(0, math.nan, 0)]  # the trainer's first SPS mark: step 0, before the loop
        rows += [
            (int(r["step"]), float(r["perf/sps"]), int(float(r["perf/updates"])))
            for r in csv.DictReader(f)
            if r["perf/sps"]
        ]
    start = next((i for i, (step, _, _) in enumerate(rows) if step >= warmup), None)
    if start is None or start == len(rows) - 1:
        raise RuntimeError(f"no perf/sps rows after the warm-up boundary in {metrics_csv}")
    seconds = sum((rows[i][0] - rows[i - 1][0]) / rows[i][1] for i in range(start + 1, len(rows)))
    return rows[-1][0] - rows[start][0], seconds, rows[-1][2] - rows[start][2]


def run_sb3(args: argparse.Namespace) -> Measurement:
    """Train Stable-Baselines3 SAC with the same settings; a callback times the window."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    _set_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    warmup, total = args.warmup, args.warmup + args.untimed + args.steps
    timed_from = warmup + args.untimed

    freq = int(dict(o.split("=", 1) for o in args.overrides).get("train_freq", 1))

    class WindowTimer(BaseCallback):
        """Marks the time (and update count) when the warm-up ends and when training ends.

        A rollout is `freq` env steps and that many gradient steps follow it (the window's
        bounds are multiples of freq), so the rollout that starts at num_timesteps == warmup
        is the first timed step; training ends right after the gradient steps of the last
        rollout.
        """

        def __init__(self) -> None:
            super().__init__()
            self.start: tuple[float, int, int] | None = None
            self.end: tuple[float, int, int] | None = None

        def _mark(self) -> tuple[float, int, int]:
            return time.perf_counter(), self.num_timesteps, self.model._n_updates

        def _on_rollout_start(self) -> None:
            if self.num_timesteps == timed_from:
                self.start = self._mark()

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            self.end = self._mark()

    env = gym.make(args.env)
    model = SAC(
        "MlpPolicy",
        env,
        batch_size=BATCH_SIZE,
        buffer_size=BUFFER_SIZE,
        learning_starts=warmup,
        train_freq=freq,
        gradient_steps=freq,
        policy_kwargs={"net_arch": list(HIDDEN)},
        device=args.device,
        seed=args.seed,
        verbose=0,
    )
    timer = WindowTimer()
    model.learn(total_timesteps=total, callback=timer, progress_bar=False)
    env.close()
    if timer.start is None or timer.end is None:
        raise RuntimeError("the SB3 callback did not see the warm-up boundary")
    seconds = timer.end[0] - timer.start[0]
    steps = timer.end[1] - timer.start[1]
    updates = timer.end[2] - timer.start[2]
    return Measurement(
        "sb3", [], steps / seconds, steps, seconds, updates,
        torch.get_num_threads(), str(model.device),
    )  # fmt: skip


def worker_main(args: argparse.Namespace) -> None:
    """Run one measurement in this process and print it as a tagged JSON line."""
    result = run_sac(args) if args.worker == "sac" else run_sb3(args)
    print(RESULT_TAG + json.dumps(dataclasses.asdict(result)), flush=True)


# --------------------------------------------------------------------------------- driver
def _log_every(warmup: int, untimed: int, steps: int) -> int:
    """The largest log interval with a row on the warm-up boundary, at the window's start and
    at its end."""
    return math.gcd(warmup, untimed, steps)


def _spawn(args: argparse.Namespace, impl: str, overrides: list[str], seed: int) -> Measurement:
    """Run one measurement in a fresh Python process and parse its result."""
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", impl,
        "--env", args.env, "--warmup", str(args.warmup), "--untimed", str(args.untimed),
        "--steps", str(args.steps), "--threads", str(args.threads), "--seed", str(seed),
        "--device", args.device, "--matmul-precision", args.matmul_precision,
    ]  # fmt: skip
    env_vars = dict(o.split("=", 1) for o in overrides if _is_env_var(o))
    overrides = [o for o in overrides if not _is_env_var(o)]
    if overrides:
        cmd += ["--overrides", *overrides]
    busy0, children0, t0 = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env_vars})
    busy1, children1, t1 = _busy_cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    # Machine-wide busy CPU time minus the worker's own: how much else was running meanwhile.
    other = ((busy1 - busy0) - (children1 - children0)) / (t1 - t0)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = Measurement(**json.loads(line[len(RESULT_TAG) :]))
            return dataclasses.replace(result, other_load=max(other, 0.0))
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise SystemExit(f"bench_speed: worker {impl} {overrides} failed (exit {proc.returncode})")


def _is_env_var(token: str) -> bool:
    """NAME=VALUE with an upper-case NAME (PYTHONPATH=..., OMP_NUM_THREADS=1) sets the
    worker's environment; other tokens are Hydra overrides."""
    name, sep, _ = token.partition("=")
    return bool(sep) and name.isupper() and name.replace("_", "").isalnum()


def _busy_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (Linux /proc/stat; else NaN)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user..steal; guest time is already counted in user
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Row:
    """One line of the results table: an implementation + settings and its measurements."""

    name: str
    settings: str
    impl: str
    overrides: list[str]
    results: list[Measurement]

    @property
    def sps(self) -> list[float]:
        return [m.sps for m in self.results]


def _rows(args: argparse.Namespace) -> list[Row]:
    base = (
        f"{args.env}, 1 env, batch {BATCH_SIZE}, {len(HIDDEN)}x{HIDDEN[0]}, 1 update/step,"
        f" buffer {BUFFER_SIZE:_}, {args.device}"
        + (f", matmul {args.matmul_precision}" if args.matmul_precision != "highest" else "")
    )
    rows = [Row("sac (this project)", base, "sac", [], [])]
    for variant in args.sac_variants:
        rows.append(
            Row("sac (this project)", f"{base}; {variant}", "sac", shlex.split(variant), [])
        )
    if not args.no_sb3:
        name = f"Stable-Baselines3 {metadata.version('stable-baselines3')} SAC"
        rows.insert(1, Row(name, base, "sb3", [], []))
        if args.sb3_train_freq > 1:
            k = args.sb3_train_freq
            settings = f"{base}; train_freq={k}, gradient_steps={k}"
            rows.insert(2, Row(name, settings, "sb3", [f"train_freq={k}"], []))
    return rows


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _table(rows: list[Row]) -> str:
    sb3 = next((r for r in rows if r.impl == "sb3"), None)
    sb3_median = statistics.median(sb3.sps) if sb3 else None
    lines = [
        "| implementation | settings | median SPS | min | max | ratio to SB3 median |"
        " updates/step | torch threads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        median = statistics.median(r.sps)
        ratio = f"{median / sb3_median:.2f}" if sb3_median else "-"
        ups = sum(m.updates for m in r.results) / sum(m.steps for m in r.results)
        threads = ",".join(sorted({str(m.threads) for m in r.results}))
        eager = sum(m.fell_back for m in r.results)
        # A compiled row whose compilation failed measured eager code: say so where it is read.
        settings = r.settings + (
            f" **(compilation failed, ran eager: {eager} of {len(r.results)} repeats)**"
            if eager
            else ""
        )
        lines.append(
            f"| {r.name} | {settings} | {_fmt(median)} | {_fmt(min(r.sps))}"
            f" | {_fmt(max(r.sps))} | {ratio} | {ups:.2f} | {threads} |"
        )
    return "\n".join(lines)


def _raw_table(rows: list[Row]) -> str:
    lines = [
        "| repeat | implementation | settings | SPS | steps | seconds | updates |"
        " other CPU load (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, m in enumerate(r.results):
            lines.append(
                f"| {i} | {r.name} | {r.settings} | {_fmt(m.sps)} | {m.steps} | {m.seconds:.2f}"
                f" | {m.updates} | {m.other_load:.2f} |"
            )
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _environment(args: argparse.Namespace) -> str:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    threads = str(args.threads) if args.threads > 0 else "torch default"
    items = [
        ("command", "`python " + shlex.join(["experiments/bench_speed.py", *sys.argv[1:]]) + "`"),
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("python", platform.python_version()),
        ("torch", _version("torch")),
        ("gymnasium", _version("gymnasium")),
        ("mujoco", _version("mujoco")),
        ("stable-baselines3", _version("stable-baselines3")),
        ("CPU", f"{cpu_model()}; os.cpu_count()={os.cpu_count()}, usable={affinity}"),
        ("torch threads (--threads)", threads),
        ("float32 matmul precision (--matmul-precision, every row)", args.matmul_precision),
        (
            "warm-up / untimed learning / timed steps / repeats",
            f"{args.warmup} / {args.untimed} / {args.steps} / {args.repeats}",
        ),
        ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset")),
        ("LD_PRELOAD", os.environ.get("LD_PRELOAD", "unset")),
    ]
    return "\n".join(f"- {k}: {v}" for k, v in items)


def _noise_warning(rows: list[Row]) -> str | None:
    """A warning when other processes used the CPU while workers ran, else None."""
    worst = max((m.other_load for r in rows for m in r.results), default=math.nan)
    if not worst > NOISY_LOAD:  # also false for NaN (no /proc/stat)
        return None
    return (
        f"**Warning:** other processes used up to {worst:.2f} CPU cores while a worker ran"
        " (column `other CPU load` below). With torch using every core, that can slow"
        " PyTorch's thread pool by far more than its share; rerun on an idle machine or with"
        " fewer --threads than free cores."
    )


def _report(args: argparse.Namespace, rows: list[Row]) -> str:
    warning = _noise_warning(rows)
    return (
        f"# Training speed, {args.env}: env steps/s after warm-up\n\n"
        "Each measurement is a fresh process that trains from scratch; SPS is timed over the"
        " steps after warm-up only (each with one policy action and one gradient update)."
        " Implementations alternate within every repeat. Ratio = median SPS / SB3 median SPS.\n\n"
        f"{_table(rows)}\n\n"
        + (f"{warning}\n\n" if warning else "")
        + f"## Setup\n\n{_environment(args)}\n\n"
        f"## Every measurement\n\n{_raw_table(rows)}\n"
    )


def driver_main(args: argparse.Namespace) -> None:
    """Alternate fresh-process measurements of every row; print and save the table."""
    if not args.no_sb3 and _version("stable-baselines3") == "not installed":
        raise SystemExit(
            "bench_speed: stable-baselines3 is not installed; pip install -e '.[bench]'"
            " (or pass --no-sb3)"
        )
    rows = _rows(args)
    for rep in range(args.repeats):
        shift = rep % len(rows)  # rotate who goes first, so no row always runs first
        for row in rows[shift:] + rows[:shift]:
            m = _spawn(args, row.impl, row.overrides, args.seed + rep)
            row.results.append(m)
            print(
                f"[{rep + 1}/{args.repeats}] {row.name} {' '.join(row.overrides)}: "
                f"{m.sps:.1f} steps/s ({m.steps} steps in {m.seconds:.2f} s, "
                f"{m.updates} updates, {m.threads} threads, other CPU load {m.other_load:.2f})"
                + (" [compilation failed: ran eager]" if m.fell_back else ""),
                flush=True,
            )
    report = _report(args, rows)
    out = Path(args.out) if args.out else RESULTS_DIR / f"speed_{args.env}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    warning = _noise_warning(rows)
    print("\n" + _table(rows) + (f"\n\n{warning}" if warning else "") + f"\n\nwritten: {out}")


# --------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    try:
        from sac.config import MATMUL_PRECISIONS  # the one list of valid values
    except ImportError:  # a worker of a checkout from before the trainer split (PYTHONPATH=...)
        from sac.trainer import MATMUL_PRECISIONS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5", help="Gymnasium env id")
    p.add_argument("--warmup", type=int, default=1000, help="random-action steps, not timed")
    p.add_argument(
        "--untimed",
        type=int,
        default=0,
        help="learning steps after the warm-up, before the window (compile=true compiles here)",
    )
    p.add_argument("--steps", type=int, default=2000, help="timed env steps after warm-up")
    p.add_argument("--repeats", type=int, default=3, help="measurements per row")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of repeat 0 (repeat i: seed+i)")
    p.add_argument("--device", default="cpu", help="torch device for both (cpu, cuda)")
    p.add_argument(
        "--matmul-precision",
        choices=MATMUL_PRECISIONS,
        default="highest",
        help="torch.set_float32_matmul_precision for every row, SB3 included (high: TF32 on"
        " NVIDIA GPUs; medium: bfloat16 inner products where the CPU/GPU has them)",
    )
    p.add_argument(
        "--sac-variants",
        nargs="*",
        default=[],
        metavar="OVERRIDES",
        help="extra rows of this project's SAC, each one string of Hydra overrides,"
        ' e.g. "env.num_envs=4" "agent.num_critics=2 torch_threads=1"',
    )
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    p.add_argument(
        "--sb3-train-freq",
        type=int,
        default=1,
        metavar="K",
        help="also SB3 with train_freq=K, gradient_steps=K (updates_per_call=K's schedule)",
    )
    p.add_argument("--out", default=None, help="report path (default results/speed_<env>.md)")
    p.add_argument("--worker", choices=["sac", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup < 0 or args.untimed < 0 or args.steps < 1 or args.repeats < 1:
        p.error("need --warmup >= 0, --untimed >= 0, --steps >= 1 and --repeats >= 1")
    k = args.sb3_train_freq
    if k < 1 or (args.warmup % k or args.untimed % k or args.steps % k):
        p.error(f"--sb3-train-freq {k}: must be >= 1 and divide --warmup, --untimed and --steps")
    every = _log_every(args.warmup, args.untimed, args.steps)
    if args.steps // every > MAX_LOG_ROWS_IN_WINDOW:
        p.error(
            f"--warmup {args.warmup}, --untimed {args.untimed} and --steps {args.steps} share "
            f"only the divisor {every}: SAC's timing needs a metrics row on every boundary; "
            "use multiples of e.g. 100 or 1000"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
    else:
        driver_main(args)


if __name__ == "__main__":
    main()
