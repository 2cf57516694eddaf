"""SAC from pixels: replay memory and training speed, this project's DrQ beside
Stable-Baselines3's SAC with its CnnPolicy, in one run.

Memory (`--capacity` transitions of DMC cartpole-swingup from 84x84 frames, 3 stacked): each
implementation fills its replay buffer with the same random episodes (125 steps, as
cartpole-swingup's 1000 frames at action repeat 8) in a fresh subprocess, and reports its peak
RSS. This project's run then trains on for `--memory-steps` env steps through its real loop
(env rendering, updates at DrQ's batch of 512) and writes a checkpoint with the buffer, as a
long run would; SB3's buffer is only filled (a lower bound of a training process), with
`optimize_memory_usage` false (its default) and true (next_obs read from the following slot).

Speed: env steps (frames, action repeats counted) per second after a warm-up of `--warmup`
frames, over a window of `--steps` frames, one update per agent step, DrQ's batch of 512, on
the same pixel env (`sac.envs.make_env` with `env.pixels=true`), repeats alternating the two.
This project runs `experiment=drq_cartpole_swingup` (DrQ's encoder: four 3x3 convolutions,
35x35 maps; 2x1024 MLPs); SB3 runs `CnnPolicy` with the same MLP sizes and 50 features (its
NatureCNN: 8x8/4, 4x4/2, 3x3/1 convolutions, 7x7 maps, one encoder per actor and critic): not the
same network, but what each library gives a pixel user.

    python experiments/bench_pixels.py --out experiments/results/pixels.md
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXPERIMENT = "drq_cartpole_swingup"
ENV_ID, ACTION_REPEAT, EPISODE = "dm_control/cartpole-swingup-v0", 8, 125
FRAME = (3, 84, 84)
STACK = 3


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _compose(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir(), job_name="bench"):
        return compose("train", overrides=[f"experiment={EXPERIMENT}", "device=cpu", *overrides])


def _pixel_env() -> Any:
    from sac.envs import PixelSpec, make_env

    return make_env(ENV_ID, action_repeat=ACTION_REPEAT, pixels=PixelSpec(84, STACK, 0))


# ----------------------------------------------------------------------------- workers
def sac_memory(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from synthetic import fill_frames

    from sac.trainer import Trainer

    warmup = 1000 * ACTION_REPEAT
    cfg = _compose(
        [
            f"agent.buffer_size={args.capacity}",
            f"total_steps={warmup + args.memory_steps}",
            "eval_every=0",
            "eval_episodes=1",
            "checkpoint_every=0",
            "keep_checkpoints=1",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="bench_pixels_") as tmp:
        trainer = Trainer(cfg, Path(tmp))
        start = rss_mib()
        fill_frames(trainer.buffer, args.capacity, EPISODE)
        filled = rss_mib()
        trainer.step = warmup  # past the warm-up: the loop acts and updates
        trainer.train()
        checkpoint = max(Path(tmp, "checkpoints").glob("step_*.pt")).stat().st_size
        return {
            "impl": "sac",
            "transitions": len(trainer.buffer),
            "frames": trainer.buffer.capacity,
            "buffer_bytes": trainer.buffer.nbytes,
            "rss_start": start,
            "rss_filled": filled,
            "rss_peak": rss_mib(),
            "checkpoint_bytes": checkpoint,
        }


def sb3_memory(args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.buffers import ReplayBuffer

    obs_space = gym.spaces.Box(0, 255, (STACK * FRAME[0], *FRAME[1:]), np.uint8)
    act_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    start = rss_mib()
    buffer = ReplayBuffer(
        args.capacity,
        obs_space,
        act_space,
        device="cpu",
        optimize_memory_usage=args.optimize,
        handle_timeout_termination=not args.optimize,
    )
    rng = np.random.default_rng(0)
    c = FRAME[0]
    for step in range(args.capacity):
        if step % EPISODE == 0:
            frame = rng.integers(0, 256, (1, *FRAME), dtype=np.uint8)
            obs = np.concatenate([frame] * STACK, axis=1)
        frame = rng.integers(0, 256, (1, *FRAME), dtype=np.uint8)
        next_obs = np.concatenate([obs[:, c:], frame], axis=1)
        done = np.array([step % EPISODE == EPISODE - 1])
        buffer.add(obs, next_obs, np.zeros((1, 1)), np.zeros(1), done, [{}])
        obs = next_obs
    nbytes = buffer.observations.nbytes + (0 if args.optimize else buffer.next_observations.nbytes)
    return {
        "impl": f"sb3 (optimize_memory_usage={args.optimize})",
        "transitions": args.capacity,
        "buffer_bytes": int(nbytes + buffer.actions.nbytes + buffer.rewards.nbytes),
        "rss_start": start,
        "rss_filled": rss_mib(),
        "rss_peak": rss_mib(),
    }


def sac_speed(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_speed import _sac_window

    from sac.trainer import Trainer

    every = args.steps // 4
    cfg = _compose(
        [
            f"total_steps={args.warmup + args.steps}",
            f"agent.warmup_steps={args.warmup}",
            f"seed={args.seed}",
            "eval_every=0",
            "eval_episodes=1",
            "checkpoint_every=0",
            "save_buffer=false",
            f"log_every={every}",
            *args.overrides,
        ]
    )
    with tempfile.TemporaryDirectory(prefix="bench_pixels_") as tmp:
        Trainer(cfg, Path(tmp)).train()
        frames, seconds, updates = _sac_window(Path(tmp) / "metrics.csv", args.warmup)
    return {"impl": "sac", "sps": frames / seconds, "frames": frames, "updates": updates}


def sb3_speed(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    warmup, total = args.warmup // ACTION_REPEAT, (args.warmup + args.steps) // ACTION_REPEAT

    class WindowTimer(BaseCallback):
        """The time and update count when the warm-up ends and when training ends."""

        start: tuple[float, int, int] | None = None
        end: tuple[float, int, int] | None = None

        def _mark(self) -> tuple[float, int, int]:
            return time.perf_counter(), self.num_timesteps, self.model._n_updates

        def _on_rollout_start(self) -> None:
            if self.num_timesteps == warmup:
                self.start = self._mark()

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            self.end = self._mark()

    env = _pixel_env()
    model = SAC(
        "CnnPolicy",
        env,
        batch_size=512,
        buffer_size=100_000,
        learning_starts=warmup,
        learning_rate=1e-3,
        tau=0.01,
        policy_kwargs={"net_arch": [1024, 1024], "features_extractor_kwargs": {"features_dim": 50}},
        device="cpu",
        seed=args.seed,
        verbose=0,
    )
    timer = WindowTimer()
    model.learn(total_timesteps=total, callback=timer, progress_bar=False)
    env.close()
    assert timer.start is not None and timer.end is not None
    seconds = timer.end[0] - timer.start[0]
    frames = (timer.end[1] - timer.start[1]) * ACTION_REPEAT
    return {
        "impl": "sb3",
        "sps": frames / seconds,
        "frames": frames,
        "updates": timer.end[2] - timer.start[2],
        "threads": torch.get_num_threads(),
    }


WORKERS = {"sac-memory": sac_memory, "sb3-memory": sb3_memory, "sac-speed": sac_speed}
WORKERS["sb3-speed"] = sb3_speed


# ----------------------------------------------------------------------------- driver
def _spawn(args: argparse.Namespace, worker: str, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", worker, "--capacity", str(args.capacity)]
    cmd += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
    cmd += ["--memory-steps", str(args.memory_steps), *extra, "--", *args.overrides]
    print("running:", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{worker} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def driver(args: argparse.Namespace) -> str:
    mib = 2**20
    raw = args.capacity * FRAME[0] * FRAME[1] * FRAME[2]
    lines = [
        "## Replay memory",
        "",
        f"{args.capacity:,} transitions of 84x84 RGB frames, {STACK} stacked (raw frames: "
        f"{raw / mib:,.0f} MiB); peak RSS of the process.",
        "",
        "| implementation | buffer bytes | RSS after start-up | RSS with full buffer | "
        "peak RSS | peak minus raw frames |",
        "|---|---|---|---|---|---|",
    ]
    memory = [_spawn(args, "sac-memory")]
    if not args.skip_sb3:
        memory += [_spawn(args, "sb3-memory"), _spawn(args, "sb3-memory", "--optimize")]
    for m in memory:
        lines.append(
            f"| {m['impl']} | {m['buffer_bytes'] / mib:,.0f} MiB | {m['rss_start']:,.0f} MiB | "
            f"{m['rss_filled']:,.0f} MiB | {m['rss_peak']:,.0f} MiB | "
            f"{(m['rss_peak'] * mib - raw) / mib:,.0f} MiB |"
        )
    sac = memory[0]
    lines += [
        "",
        f"This project's run: {sac['transitions']:,} sampleable transitions in "
        f"{sac['frames']:,} frames, then {args.memory_steps} env steps of training and a "
        f"checkpoint of {sac['checkpoint_bytes'] / mib:,.0f} MiB with the buffer. SB3's "
        "buffers are only filled.",
        "",
        "## Speed",
        "",
        f"Env steps (frames) per second after {args.warmup} warm-up frames, over {args.steps} "
        f"frames (an update every {ACTION_REPEAT} frames, batch 512), {args.repeats} repeats "
        "(medians).",
        "",
        "| implementation | env steps/s | per repeat | ratio to SB3 |",
        "|---|---|---|---|",
    ]
    speeds: dict[str, list[float]] = {"sac": [], "sb3": []}
    for r in range(args.repeats):
        order = ["sac", "sb3"] if r % 2 == 0 else ["sb3", "sac"]
        for impl in order:
            if impl == "sb3" and args.skip_sb3:
                continue
            speeds[impl].append(_spawn(args, f"{impl}-speed", "--seed", str(r))["sps"])
    base = statistics.median(speeds["sb3"]) if speeds["sb3"] else float("nan")
    for impl, label in (("sac", f"sac, experiment={EXPERIMENT}"), ("sb3", "SB3 SAC CnnPolicy")):
        if speeds[impl]:
            med = statistics.median(speeds[impl])
            each = ", ".join(f"{s:.1f}" for s in speeds[impl])
            lines.append(f"| {label} | {med:.1f} | {each} | {med / base:.2f} |")
    lines += ["", f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, CPU only."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--memory-steps", type=int, default=80)
    # the preset's warm-up: 1000 agent steps, enough transitions for a batch of 512
    parser.add_argument("--warmup", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimize", action="store_true")
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("overrides", nargs="*", help="sac-train overrides for this project's runs")
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    report = driver(args)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
