"""The training loop: warm-up, collect, update, evaluate, log, checkpoint.

Data flows one way: env -> transitions -> replay buffer -> batch -> agent.update -> metrics ->
logger. The trainer holds no maths; the agent holds no env, config or file code. What it uses
lives in the modules that own those jobs: config checks (sac/config.py), the device and seeds
(sac/runtime.py), stop signals (sac/signals.py), the checkpoint's content (sac/run_state.py)
and the evaluation episodes (sac/rollout.py).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sac.agent import METRIC_NAMES, SAC
from sac.buffer import ReplayBuffer
from sac.checkpoint import save_checkpoint, step_path
from sac.compiled import make_updater
from sac.config import agent_config, validated
from sac.envs import (
    EnvRunner,
    GoalSpec,
    action_bounds,
    goal_spec,
    make_env,
    make_vector_env,
    obs_keys,
    obs_shape,
    pixel_spec,
    state_dim,
)
from sac.errors import SACError
from sac.frames import FrameReplayBuffer
from sac.her import HerReplayBuffer
from sac.logging import Progress, RunLogger
from sac.losses import map_obs
from sac.plots import PLOT_NAME, plot_run
from sac.rollout import evaluate_policy
from sac.run_state import Counters, build_state, restore_state
from sac.runtime import resolve_device
from sac.seeding import eval_seed, seed_everything, stream_seed
from sac.signals import GracefulStop
from sac.video import EvalVideo, headless_rendering

log = logging.getLogger("sac")

# The metrics CSV's columns (after step and time): per finished episode, per evaluation, and
# per log interval (the agent's update metrics averaged over it, and throughput).
CSV_COLUMNS = (
    "train/episode_return",
    "train/episode_length",
    "train/success",
    "eval/return_mean",
    "eval/return_std",
    "eval/length_mean",
    "eval/success_rate",
    *METRIC_NAMES,
    "perf/sps",
    "perf/updates",
)


class Trainer:
    """Owns the envs, buffer, agent and logger of one run; `train()` runs it to total_steps.

    With `resume_from`, the agent, replay buffer, counters and RNG states come from that
    checkpoint and the run continues where it stopped (an episode in progress restarts).
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, resume_from: Path | None = None) -> None:
        validated(cfg)  # the schemas' value checks: one line naming the key, before any work
        if cfg.eval_video:
            headless_rendering()  # before the envs import MuJoCo
        self.cfg = cfg
        self.run_dir = run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SACError(f"cannot create run directory {run_dir}: {e}") from None
        if not os.access(run_dir, os.W_OK):
            raise SACError(f"run directory {run_dir} is not writable; set hydra.run.dir=...")
        self.device = resolve_device(cfg.device)
        if cfg.cudagraphs and self.device.type != "cuda":
            raise SACError(
                f"cudagraphs=true needs a CUDA device, and this run is on {self.device.type}; "
                "use device=cuda, or compile=true without CUDA graphs"
            )
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        # Process-wide in PyTorch: set when train() starts and put back in close(), so a
        # constructor that fails part-way leaves the caller's setting alone.
        self._old_matmul_precision = torch.get_float32_matmul_precision()
        seed_everything(cfg.seed)

        self.envs = make_vector_env(
            cfg.env.id,
            cfg.env.kwargs,
            cfg.env.num_envs,
            cfg.env.vectorization,
            action_repeat=cfg.env.action_repeat,
            pixels=pixel_spec(cfg.env),
        )
        self.eval_env = make_env(
            cfg.env.id,
            cfg.env.kwargs,
            render_mode="rgb_array" if cfg.eval_video else None,
            action_repeat=cfg.env.action_repeat,
            pixels=pixel_spec(cfg.env),
        )
        self.obs_shape = obs_shape(self.envs)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.state_dim = state_dim(self.envs)  # beside the frames (env.pixels_state), else 0
        self.act_dim = int(np.prod(self.envs.single_action_space.shape))
        low, high = action_bounds(self.eval_env)
        # What a checkpoint says of the env: shapes, and the bounds load_policy maps actions to.
        self.spaces = {
            "obs_dim": self.obs_dim,
            "obs_shape": list(self.obs_shape),
            "act_dim": self.act_dim,
            "action_low": low.tolist(),
            "action_high": high.tolist(),
        }
        keys = obs_keys(self.eval_env)
        if keys is not None:  # a Dict observation: load_policy and sac-export take it by key
            self.spaces["obs_keys"] = [[key, list(shape)] for key, shape in keys]
        if self.state_dim:
            self.spaces["state_dim"] = self.state_dim
        self.agent = SAC(
            self.obs_shape, self.act_dim, agent_config(cfg), self.device, self.state_dim
        )
        self.updater = make_updater(self.agent, compile=cfg.compile, cudagraphs=cfg.cudagraphs)
        try:
            self.buffer = self._make_buffer(goal_spec(self.eval_env))
        except BaseException:
            self.envs.close()
            self.eval_env.close()
            raise
        self.action_rng = torch.Generator().manual_seed(stream_seed(cfg.seed, "warmup"))
        self.step = 0
        self.episodes = 0
        self.env_episodes: list[int] | None = None  # each env's episode in progress (resume)
        self.last_eval: tuple[int, float] | None = None
        self.last_success: float | None = None  # the last evaluation's success rate, if any
        self.last_checkpoint: Path | None = None
        self.stop = GracefulStop()
        logger_state: dict[str, Any] = {}  # what the checkpoint kept of the loggers
        try:
            if cfg.eval_video:
                self._check_rendering()
            if resume_from is not None:
                logger_state = self.restore(resume_from)
            # Before anything is written to the run directory: a logger that cannot start
            # (W&B without a login) stops the run with the directory as it was.
            self.logger = RunLogger(
                run_dir,
                CSV_COLUMNS,
                cfg,
                resume_step=self.step if resume_from is not None else None,
                state=logger_state,
            )
        except BaseException:
            self.envs.close()
            self.eval_env.close()
            raise
        # The config this process trains with (on resume: the stored one plus safe changes),
        # which .hydra/config.yaml, the command line's composition, need not be.
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        # Every episode is seeded by its env and number, so a resume restarts the episodes in
        # progress from their own seeds (and continues exactly where all had just ended).
        self.runner = EnvRunner(self.envs, cfg.seed, self.env_episodes)

    def _make_buffer(self, goals: GoalSpec | None) -> ReplayBuffer | FrameReplayBuffer:
        """The replay buffer: frames stored once for images; HER's when her.enabled (on a
        goal-conditioned env); else flat."""
        cfg, seed = self.cfg, stream_seed(self.cfg.seed, "buffer")
        if self.agent.pixels:
            if cfg.her.enabled:
                raise SACError("her.enabled=true takes vector observations; set env.pixels=false")
            return FrameReplayBuffer(
                cfg.agent.buffer_size,
                self.obs_shape,
                # rendered frames are stacked by env.frame_stack; an env's own images are not
                cfg.env.frame_stack if cfg.env.pixels else 1,
                self.act_dim,
                cfg.env.num_envs,
                self.device,
                seed,
                state_dim=self.state_dim,
            )
        if not cfg.her.enabled:
            if goals is not None:
                log.warning(
                    "hint: %s is goal-conditioned (achieved_goal, desired_goal, compute_reward); "
                    "its sparse rewards are learnt far faster with her.enabled=true",
                    cfg.env.id,
                )
            return ReplayBuffer(
                cfg.agent.buffer_size, self.obs_dim, self.act_dim, self.device, seed
            )
        if goals is None:
            raise SACError(
                f"her.enabled=true needs a goal-conditioned env (a Dict observation with "
                f"observation, achieved_goal and desired_goal, and compute_reward), and "
                f"{cfg.env.id} has {self.eval_env.unwrapped.observation_space}; set "
                "her.enabled=false"
            )
        if cfg.env.action_repeat != 1:
            raise SACError(
                "her.enabled=true needs env.action_repeat=1: compute_reward rates one env "
                "step, and a repeated action's reward sums several"
            )
        n = cfg.env.num_envs
        capacity = cfg.agent.buffer_size - cfg.agent.buffer_size % n
        if capacity == 0:
            raise SACError(f"her.enabled=true needs agent.buffer_size >= env.num_envs ({n})")
        if capacity != cfg.agent.buffer_size:
            log.info(
                "HER buffer: %d slots (agent.buffer_size rounded down to a multiple of "
                "env.num_envs=%d, so each env keeps its episodes in slots of its own)",
                capacity,
                n,
            )
        return HerReplayBuffer(
            capacity,
            self.obs_dim,
            self.act_dim,
            n,
            goals.achieved,
            goals.desired,
            goals.compute_reward,
            cfg.her.strategy,
            cfg.her.n_sampled_goal,
            self.device,
            seed,
        )

    # ----------------------------------------------------------------------------- loop
    def train(self) -> dict[str, Any]:
        """Run to total_steps (or until SIGINT/SIGTERM/SIGUSR2); returns a summary."""
        cfg = self.cfg
        self._log_start()
        self.progress = Progress(
            cfg.total_steps, start_step=self.step, warmup_steps=cfg.agent.warmup_steps
        )
        self.recent: deque[float] = deque(maxlen=10)  # the last episodes' returns
        self.metric_sum = torch.zeros(len(METRIC_NAMES), device=self.device)
        self.metric_count, self.interval_start = 0, self.step
        # updates per env step (frame): updates_per_step per transition, k frames each
        self.utd = Fraction(str(cfg.agent.updates_per_step)).limit_denominator(1_000_000) / (
            cfg.env.action_repeat
        )
        self.sps_mark = (time.perf_counter(), self.step)
        try:
            with self.stop:
                torch.set_float32_matmul_precision(cfg.matmul_precision)
                while self.step < cfg.total_steps and not self.stop.requested:
                    prev = self.step
                    self._collect()
                    self._update()
                    self._log_interval(prev)
                    if cfg.eval_every > 0 and _crossed(prev, self.step, cfg.eval_every):
                        self.evaluate()
                    if _crossed(prev, self.step, cfg.checkpoint_every):
                        self.save()
                if not self.stop.requested and (self.last_eval or (None,))[0] != self.step:
                    self.evaluate()
                if self.last_checkpoint != step_path(self.run_dir, self.step).resolve():
                    self.save(final=True)
        finally:
            self.progress.close()
            self.close()
            self._plot()
        return self._summary()

    def _log_start(self) -> None:
        cfg = self.cfg
        log.info("run directory: %s", self.run_dir)
        log.info(
            "env %s (obs %s%s, act %d, %d env(s)), device %s, steps %d -> %d",
            cfg.env.id,
            "x".join(map(str, self.obs_shape)),
            f" + state {self.state_dim}" if self.state_dim else "",
            self.act_dim,
            cfg.env.num_envs,
            self.device,
            self.step,
            cfg.total_steps,
        )

    def _collect(self) -> None:
        """One vector step: warm-up or policy actions, transitions into the buffer (and their
        observations into the normalisation statistics, rewards into the reward scale's
        statistics), finished episodes to the logger."""
        n_envs = self.cfg.env.num_envs
        if self.step < self.cfg.agent.warmup_steps:
            action = (torch.rand(n_envs, self.act_dim, generator=self.action_rng) * 2 - 1).numpy()
        else:
            obs = map_obs(lambda x: torch.as_tensor(x, device=self.device), self.runner.obs)
            action = self.agent.act(obs).cpu().numpy()
        tr = self.runner.step(action)
        ended = np.logical_or(tr.terminated, tr.truncated)
        self.buffer.add(tr.obs, tr.action, tr.reward, tr.next_obs, tr.terminated, ended)
        # The normalisation statistics (agent.obs_norm) cover the obs of every stored
        # transition: each state acted in, once. The buffer keeps the raw observations.
        if self.agent.obs_norm is not None:  # (vectors only)
            self.agent.update_obs_norm(torch.as_tensor(tr.obs))
        # The reward scale (agent.reward_norm) follows every transition, the warm-up's too.
        self.agent.update_reward_norm(torch.as_tensor(tr.reward), torch.as_tensor(ended))
        # env steps: frames, so an action held k times (env.action_repeat) counts k
        prev, self.step = self.step, self.step + n_envs * self.cfg.env.action_repeat
        if self.cfg.agent.gsde:  # new exploration noise for the envs whose episode starts
            every = self.cfg.agent.gsde_sample_freq
            if every > 0 and _crossed(prev, self.step, every):
                self.agent.reset_noise(n_envs)
            elif every == -1 and ended.any():
                self.agent.reset_noise(n_envs, torch.as_tensor(ended))
        for ret, length, success in zip(
            tr.episode_returns, tr.episode_lengths, tr.episode_successes
        ):
            self.episodes += 1
            self.recent.append(ret)
            row = {"train/episode_return": ret, "train/episode_length": length}
            if success is not None:
                row["train/success"] = success
            self.logger.log(self.step, row)

    def _update(self) -> None:
        """The gradient updates due at this step. Each transition collected after the warm-up
        earns updates_per_step updates (a vector step of N envs earns N * updates_per_step),
        counted exactly from the step counter (in frames: / action_repeat), so fractions
        neither drift nor reset on resume. They start once a batch's worth of transitions is
        collected, if that comes after the warm-up: updates earned before it would otherwise
        all run at once, on those first transitions and with no stop signal heard meanwhile.
        With updates_per_call = K they run K at a time, once K are due."""
        k, batch_size = self.cfg.updates_per_call, self.cfg.agent.batch_size
        start = max(self.cfg.agent.warmup_steps, batch_size * self.cfg.env.action_repeat)
        due = int(max(0, self.step - start) * self.utd)
        while self.agent.num_updates + k <= due and len(self.buffer) >= batch_size:
            # Summed on the device, read once per log interval (no host sync here).
            if k == 1:
                metrics = self.updater.update(self.buffer.sample(batch_size))
                self.metric_sum += torch.stack([metrics[n] for n in METRIC_NAMES])
            else:
                metrics = self.updater.update_many(self.buffer.sample(batch_size, k))
                self.metric_sum += torch.stack([metrics[n] for n in METRIC_NAMES]).sum(dim=1)
            self.metric_count += k

    def _log_interval(self, prev: int) -> None:
        """At the end of a log interval: a row of throughput and the update metrics averaged
        over the interval, and a progress line; between them, the progress bar only."""
        if not (_crossed(prev, self.step, self.cfg.log_every) or self.step >= self.cfg.total_steps):
            self.progress.update(self.step, _mean(self.recent), self.last_eval)
            return
        now = time.perf_counter()
        sps = (self.step - self.sps_mark[1]) / max(now - self.sps_mark[0], 1e-9)
        self.sps_mark = (now, self.step)
        row = {"perf/sps": sps, "perf/updates": self.agent.num_updates}
        if self.metric_count:  # the one host sync of the interval
            means = (self.metric_sum / self.metric_count).tolist()
            self._check_finite(means, self.interval_start)
            row.update(zip(METRIC_NAMES, means))
            self.metric_sum.zero_()
            self.metric_count = 0
        self.interval_start = self.step
        self.logger.log(self.step, row)
        self.progress.update(self.step, _mean(self.recent), self.last_eval, force=True)

    def _summary(self) -> dict[str, Any]:
        """The run's summary; after a stop, how to resume (and SIGUSR2 handed on)."""
        summary = {
            "steps": self.step,
            "episodes": self.episodes,
            "checkpoint": str(self.last_checkpoint),
            "eval_return": self.last_eval[1] if self.last_eval else None,
            "eval_success_rate": self.last_success,  # goal-conditioned envs; None otherwise
            "interrupted_by": self.stop.name,
        }
        if self.stop.requested:
            log.info(
                "stopped by %s at step %d; checkpoint %s; resume with: sac-train resume=%s",
                summary["interrupted_by"],
                self.step,
                self.last_checkpoint,
                self.run_dir,
            )
            self.stop.hand_on()
        else:
            log.info("done: %s", summary)
        return summary

    def evaluate(self) -> float | None:
        """Deterministic evaluation on the separate eval env; None if a stop signal cut it.
        With eval_video, its first episode is recorded to videos/eval_step<N>.mp4."""
        video = self._video_recorder() if self.cfg.eval_video else None
        try:
            episodes = evaluate_policy(
                self.agent,
                self.eval_env,
                self.cfg.eval_episodes,
                seed=eval_seed(self.cfg.seed),
                stop=lambda: self.stop.requested,
                on_frame=video.add if video else None,
                render_episodes=1,
            )
        finally:
            if video:
                video.close()
        returns = episodes.returns
        if len(returns) < self.cfg.eval_episodes:
            return None
        mean = float(np.mean(returns))
        self.last_eval = (self.step, mean)
        row = {
            "eval/return_mean": mean,
            "eval/return_std": float(np.std(returns)),
            "eval/length_mean": float(np.mean(episodes.lengths)),
        }
        success = self.last_success = episodes.success_rate
        if success is not None:
            row["eval/success_rate"] = success
        self.logger.log(self.step, row)
        if video and video.path is not None:
            self.logger.log_video(self.step, "eval/video", video.path)
        log.info(
            "eval @%d: return %.1f +- %.1f over %d episodes%s",
            self.step,
            mean,
            float(np.std(returns)),
            len(returns),
            "" if success is None else f", success rate {success:.2f}",
        )
        return mean

    # ----------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """The checkpoint payload: config, counters, agent, replay buffer and RNG states."""
        return build_state(
            self.cfg,
            Counters(self.step, self.episodes, self.last_eval, self.runner.episodes.tolist()),
            self.agent,
            self.buffer,
            self.action_rng,
            self.spaces,
            self.logger.state(),
        )

    def restore(self, path: Path) -> dict[str, Any]:
        """Continue from a checkpoint written by `state()`; returns what it kept of the
        loggers (the W&B run id), for the RunLogger."""
        counters, loggers = restore_state(
            path,
            self.agent,
            self.buffer,
            self.action_rng,
            self.obs_shape,
            self.act_dim,
            self.cfg.env.id,
        )
        self.step, self.episodes = counters.step, counters.episodes
        # The runner restarts the episodes in progress from their seeds (HER's buffer then
        # leaves their stored beginnings unfinished, never sampled).
        self.buffer.restart_episodes()
        # (checkpoints before per-episode seeds: every env starts a new episode number)
        self.env_episodes = counters.env_episodes or [counters.episodes] * self.cfg.env.num_envs
        if counters.last_eval is not None:
            self.last_eval = counters.last_eval
        self.last_checkpoint = path.resolve()
        log.info(
            "resumed from %s at step %d (%d transitions in the replay buffer)",
            path,
            self.step,
            len(self.buffer),
        )
        return loggers

    def save(self, final: bool = False) -> Path | None:
        """Write a checkpoint. A failed periodic save is reported and training goes on (the
        next one retries); a failed final save falls back to a rescue copy in the temp dir."""
        if not self.agent.all_finite():
            raise SACError(
                f"non-finite parameters at step {self.step}; not saving them. Training stopped; "
                f"the last good checkpoint is {self.last_checkpoint}"
            )
        path = step_path(self.run_dir, self.step)
        try:
            save_checkpoint(self.state(), path, keep=self.cfg.keep_checkpoints)
        except OSError as e:
            if not final:
                log.error(
                    "could not write checkpoint %s (%s); training continues and the next "
                    "checkpoint retries",
                    path,
                    e,
                )
                return None
            rescue = Path(tempfile.gettempdir()) / f"sac-rescue-{self.run_dir.name}"
            try:
                save_checkpoint(self.state(), step_path(rescue, self.step))
            except OSError:
                raise SACError(f"could not write checkpoint {path}: {e}") from None
            raise SACError(
                f"could not write checkpoint {path} ({e}); saved it to {rescue} instead: "
                f"resume with sac-train resume={rescue}"
            ) from None
        self.last_checkpoint = path.resolve()
        log.info("checkpoint: %s", path)
        return path

    def _plot(self) -> None:
        """returns.png in the run directory (all of metrics.csv, earlier segments included)."""
        title = f"{self.cfg.env.id}, {self.cfg.agent.name}, seed {self.cfg.seed}"
        try:
            path = plot_run(self.run_dir, title)
        except Exception as e:  # a convenience: a failed drawing must not fail a finished run
            log.warning("could not draw %s: %s", PLOT_NAME, e)
        else:
            if path is not None:
                log.info("plot: %s", path)

    def _check_rendering(self) -> None:
        """eval_video=true: render one frame now, so a machine that cannot render fails at the
        start with a hint, not at the first evaluation."""
        try:
            self.eval_env.reset(seed=eval_seed(self.cfg.seed))  # evaluations reseed it anyway
            self.eval_env.render()
        except Exception as e:
            detail = " ".join(str(e).split())[:200]
            raise SACError(
                f"eval_video=true but {self.cfg.env.id} cannot render ({type(e).__name__}: "
                f"{detail}); MuJoCo needs MUJOCO_GL=egl and the EGL libraries (apt-get install "
                "libegl1 libgl1), or set eval_video=false"
            ) from None

    def _video_recorder(self) -> EvalVideo:
        fps = int(self.eval_env.metadata.get("render_fps") or 30)
        return EvalVideo(self.run_dir / "videos" / f"eval_step{self.step}.mp4", fps)

    def close(self) -> None:
        self.runner.close()
        self.eval_env.close()
        self.logger.close()
        torch.set_float32_matmul_precision(self._old_matmul_precision)

    # ----------------------------------------------------------------------------- faults
    def _check_finite(self, means: list[float], since: int) -> None:
        for name, value in zip(METRIC_NAMES, means):
            if not math.isfinite(value):
                raise SACError(
                    f"non-finite {name} ({value}) in the updates between steps {since} and "
                    f"{self.step}; training stopped, the last good checkpoint is "
                    f"{self.last_checkpoint}"
                )


def _crossed(prev: int, now: int, every: int) -> bool:
    """True when a multiple of `every` lies in (prev, now]."""
    return every > 0 and now // every > prev // every


def _mean(values: deque) -> float | None:
    return float(np.mean(values)) if values else None
