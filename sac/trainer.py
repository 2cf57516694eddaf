"""The training loop: warm-up, collect, update, evaluate, log, checkpoint.

Data flows one way: env -> transitions -> replay buffer -> batch -> agent.update -> metrics ->
logger. The trainer holds no maths; the agent holds no env, config or file code.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sac.agent import METRIC_NAMES, SAC, AgentConfig
from sac.buffer import ReplayBuffer
from sac.checkpoint import check_spaces, load_checkpoint, save_checkpoint, step_path
from sac.compiled import make_updater
from sac.envs import EnvRunner, make_env, make_vector_env, space_dims
from sac.errors import SACError
from sac.loggers import logger_names
from sac.logging import Progress, RunLogger
from sac.plots import PLOT_NAME, plot_run
from sac.video import VideoWriter, headless_rendering

log = logging.getLogger("sac")

# Signals that stop a run gracefully: finish the step, checkpoint, close, return. SIGUSR2 is the
# one SLURM sends through submitit (--signal=USR2@signal_delay_s) before the time limit, and on
# preemption where the cluster sets preempt_send_user_signal; it does not exist on Windows.
SIGUSR2: int | None = getattr(signal, "SIGUSR2", None)
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, SIGUSR2) if s is not None)

# The metrics CSV's columns (after step and time): per finished episode, per evaluation, and
# per log interval (the agent's update metrics averaged over it, and throughput).
CSV_COLUMNS = (
    "train/episode_return",
    "train/episode_length",
    "eval/return_mean",
    "eval/return_std",
    "eval/length_mean",
    *METRIC_NAMES,
    "perf/sps",
    "perf/updates",
)


def resolve_device(spec: str) -> torch.device:
    """auto | cpu | cuda | cuda:N -> a usable torch.device, or a clear error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise SACError(f"device='{spec}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SACError(
                f"device={spec} but no CUDA GPU is available here; use device=cpu or device=auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SACError(f"device={spec} but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type != "cpu":
        raise SACError(f"device={spec} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def agent_config(cfg: DictConfig) -> AgentConfig:
    """The typed AgentConfig from the composed Hydra config."""
    return AgentConfig(**OmegaConf.to_container(cfg.agent, resolve=True))  # type: ignore[arg-type]


def evaluate_policy(
    agent: SAC,
    env: Any,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
    render_episodes: int | None = None,
) -> tuple[list[float], list[int]]:
    """Run whole episodes; return their returns and lengths. `on_frame(episode, frame)` gets
    each rendered frame as it comes (so videos stream to disk instead of piling up in memory),
    for the first `render_episodes` episodes (None: all); `stop` is asked between episodes and
    ends the evaluation early when it says so."""
    returns, lengths = [], []
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        if stop is not None and stop():
            break
        ep_return, ep_len, done = 0.0, 0, False
        render = on_frame is not None and (render_episodes is None or episode < render_episodes)
        if render:
            on_frame(episode, env.render())
        while not done:
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=agent.device)
            action = agent.act(obs_t.unsqueeze(0), deterministic=deterministic)[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            ep_return += float(reward)
            ep_len += 1
            done = terminated or truncated
            if render:
                on_frame(episode, env.render())
        returns.append(ep_return)
        lengths.append(ep_len)
        obs, _ = env.reset()
    return returns, lengths


class Trainer:
    """Owns the envs, buffer, agent and logger of one run; `train()` runs it to total_steps.

    With `resume_from`, the agent, replay buffer, counters and RNG states come from that
    checkpoint and the run continues where it stopped (an episode in progress restarts).
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, resume_from: Path | None = None) -> None:
        _check_config(cfg)
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
            cfg.env.id, cfg.env.kwargs, cfg.env.num_envs, cfg.env.vectorization
        )
        self.eval_env = make_env(
            cfg.env.id, cfg.env.kwargs, render_mode="rgb_array" if cfg.eval_video else None
        )
        self.obs_dim, self.act_dim = space_dims(self.envs)
        self.agent = SAC(self.obs_dim, self.act_dim, agent_config(cfg), self.device)
        self.updater = make_updater(self.agent, compile=cfg.compile, cudagraphs=cfg.cudagraphs)
        self.buffer = ReplayBuffer(
            cfg.agent.buffer_size, self.obs_dim, self.act_dim, self.device, seed=cfg.seed
        )
        # Warm-up actions come from a generator of their own, so they do not depend on the
        # policy's sampling noise.
        self.action_rng = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.episodes = 0
        self.last_eval: tuple[int, float] | None = None
        self.last_checkpoint: Path | None = None
        self.stop_signal: int | None = None
        self._usr2_received = False  # whether SIGUSR2 took part in the stop (see _on_signal)
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
        # A resumed run reseeds its envs by step, so resuming twice from one checkpoint replays
        # the same episodes.
        self.runner = EnvRunner(self.envs, cfg.seed + self.step)

    # ----------------------------------------------------------------------------- loop
    def train(self) -> dict[str, Any]:
        """Run to total_steps (or until SIGINT/SIGTERM/SIGUSR2); returns a summary."""
        cfg = self.cfg
        n_envs = cfg.env.num_envs
        warmup = cfg.agent.warmup_steps
        log.info("run directory: %s", self.run_dir)
        log.info(
            "env %s (obs %d, act %d, %d env(s)), device %s, steps %d -> %d",
            cfg.env.id,
            self.obs_dim,
            self.act_dim,
            n_envs,
            self.device,
            self.step,
            cfg.total_steps,
        )
        progress = Progress(cfg.total_steps, start_step=self.step, warmup_steps=warmup)
        recent: deque[float] = deque(maxlen=10)
        metric_sum = torch.zeros(len(METRIC_NAMES), device=self.device)
        metric_count, interval_start = 0, self.step
        utd = Fraction(str(cfg.agent.updates_per_step)).limit_denominator(1_000_000)
        k, batch_size = cfg.updates_per_call, cfg.agent.batch_size
        sps_mark = (time.perf_counter(), self.step)
        self._install_signal_handlers()
        try:
            torch.set_float32_matmul_precision(cfg.matmul_precision)
            while self.step < cfg.total_steps and self.stop_signal is None:
                prev = self.step
                if self.step < warmup:
                    action = (
                        torch.rand(n_envs, self.act_dim, generator=self.action_rng) * 2 - 1
                    ).numpy()
                else:
                    obs = torch.as_tensor(self.runner.obs, device=self.device)
                    action = self.agent.act(obs).cpu().numpy()
                tr = self.runner.step(action)
                self.buffer.add(tr.obs, tr.action, tr.reward, tr.next_obs, tr.terminated)
                self.step += n_envs
                for ret, length in zip(tr.episode_returns, tr.episode_lengths):
                    self.episodes += 1
                    recent.append(ret)
                    self.logger.log(
                        self.step, {"train/episode_return": ret, "train/episode_length": length}
                    )

                # Each transition collected after the warm-up earns updates_per_step gradient
                # updates (a vector step of N envs earns N * updates_per_step). Counted exactly
                # from the step counter, so fractions neither drift nor reset on resume.
                # With updates_per_call = K they run K at a time, once K are due.
                due = int(max(0, self.step - warmup) * utd)
                while self.agent.num_updates + k <= due and len(self.buffer) >= batch_size:
                    if k == 1:
                        metrics = self.updater.update(self.buffer.sample(batch_size))
                        metric_sum += torch.stack([metrics[n] for n in METRIC_NAMES])
                    else:
                        metrics = self.updater.update_many(self.buffer.sample(batch_size, k))
                        metric_sum += torch.stack([metrics[n] for n in METRIC_NAMES]).sum(dim=1)
                    metric_count += k

                if _crossed(prev, self.step, cfg.log_every) or self.step >= cfg.total_steps:
                    now = time.perf_counter()
                    sps = (self.step - sps_mark[1]) / max(now - sps_mark[0], 1e-9)
                    sps_mark = (now, self.step)
                    row = {"perf/sps": sps, "perf/updates": self.agent.num_updates}
                    if metric_count:  # the one host sync of the interval
                        means = (metric_sum / metric_count).tolist()
                        self._check_finite(means, interval_start)
                        row.update(zip(METRIC_NAMES, means))
                        metric_sum.zero_()
                        metric_count = 0
                    interval_start = self.step
                    self.logger.log(self.step, row)
                    progress.update(self.step, _mean(recent), self.last_eval, force=True)
                else:
                    progress.update(self.step, _mean(recent), self.last_eval)

                if cfg.eval_every > 0 and _crossed(prev, self.step, cfg.eval_every):
                    self.evaluate()
                if _crossed(prev, self.step, cfg.checkpoint_every):
                    self.save()
            if self.stop_signal is None and (self.last_eval or (None,))[0] != self.step:
                self.evaluate()
            if self.last_checkpoint != step_path(self.run_dir, self.step).resolve():
                self.save(final=True)
        finally:
            self._restore_signal_handlers()
            progress.close()
            self.close()
            self._plot()
        summary = {
            "steps": self.step,
            "episodes": self.episodes,
            "checkpoint": str(self.last_checkpoint),
            "eval_return": self.last_eval[1] if self.last_eval else None,
            "interrupted_by": signal.Signals(self.stop_signal).name if self.stop_signal else None,
        }
        if self.stop_signal is not None:
            log.info(
                "stopped by %s at step %d; checkpoint %s; resume with: sac-train resume=%s",
                summary["interrupted_by"],
                self.step,
                self.last_checkpoint,
                self.run_dir,
            )
            self._hand_on_signal()
        else:
            log.info("done: %s", summary)
        return summary

    def evaluate(self) -> float | None:
        """Deterministic evaluation on the separate eval env; None if a stop signal cut it.
        With eval_video, its first episode is recorded to videos/eval_step<N>.mp4."""
        video = self._video_recorder() if self.cfg.eval_video else None
        try:
            returns, lengths = evaluate_policy(
                self.agent,
                self.eval_env,
                self.cfg.eval_episodes,
                seed=self.cfg.seed + 10_000,
                stop=lambda: self.stop_signal is not None,
                on_frame=video.add if video else None,
                render_episodes=1,
            )
        finally:
            if video:
                video.close()
        if len(returns) < self.cfg.eval_episodes:
            return None
        mean = float(np.mean(returns))
        self.last_eval = (self.step, mean)
        self.logger.log(
            self.step,
            {
                "eval/return_mean": mean,
                "eval/return_std": float(np.std(returns)),
                "eval/length_mean": float(np.mean(lengths)),
            },
        )
        if video and video.path is not None:
            self.logger.log_video(self.step, "eval/video", video.path)
        log.info(
            "eval @%d: return %.1f +- %.1f over %d episodes",
            self.step,
            mean,
            float(np.std(returns)),
            len(returns),
        )
        return mean

    # ----------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """The checkpoint payload: config, counters, agent, replay buffer and RNG states."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "action": self.action_rng.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "counters": {
                "env_steps": self.step,
                "updates": self.agent.num_updates,
                "episodes": self.episodes,
                "last_eval": list(self.last_eval) if self.last_eval else None,
            },
            "spaces": {"obs_dim": self.obs_dim, "act_dim": self.act_dim},
            "agent": self.agent.state_dict(),
            "rng": rng,
            "loggers": self.logger.state(),  # the W&B run id, so a resume continues that run
        }
        if self.cfg.save_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def restore(self, path: Path) -> dict[str, Any]:
        """Continue from a checkpoint written by `state()`; returns what it kept of the
        loggers (the W&B run id), for the RunLogger."""
        state = load_checkpoint(path, map_location=self.device, mmap=False)
        check_spaces(state, self.obs_dim, self.act_dim, self.cfg.env.id)
        self.agent.load_state_dict(state["agent"])
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
        else:
            log.warning(
                "checkpoint %s holds no replay buffer (save_buffer=false): learning "
                "continues from an empty buffer",
                path,
            )
        counters = state["counters"]
        self.step, self.episodes = int(counters["env_steps"]), int(counters["episodes"])
        if counters.get("last_eval"):
            self.last_eval = (int(counters["last_eval"][0]), float(counters["last_eval"][1]))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        self.action_rng.set_state(rng["action"].cpu())
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        self.last_checkpoint = path.resolve()
        log.info(
            "resumed from %s at step %d (%d transitions in the replay buffer)",
            path,
            self.step,
            len(self.buffer),
        )
        return dict(state.get("loggers", {}))  # checkpoints before the loggers facade: none

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
            self.eval_env.reset(seed=self.cfg.seed + 10_000)  # evaluations reseed it anyway
            self.eval_env.render()
        except Exception as e:
            detail = " ".join(str(e).split())[:200]
            raise SACError(
                f"eval_video=true but {self.cfg.env.id} cannot render ({type(e).__name__}: "
                f"{detail}); MuJoCo needs MUJOCO_GL=egl and the EGL libraries (apt-get install "
                "libegl1 libgl1), or set eval_video=false"
            ) from None

    def _video_recorder(self) -> _EvalVideo:
        fps = int(self.eval_env.metadata.get("render_fps") or 30)
        return _EvalVideo(self.run_dir / "videos" / f"eval_step{self.step}.mp4", fps)

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

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM/SIGUSR2 finish the current step, checkpoint and return; a second
        SIGINT exits at once (checkpoints are written atomically, so the last one stays intact).
        """
        self._old_handlers: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            if sig == SIGUSR2 and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # someone chose to ignore it; a stray SIGUSR2 must not stop the run
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_signal is not None and signum == signal.SIGINT:
            os.write(2, b"\nsac-train: second interrupt, exiting now without a checkpoint\n")
            os._exit(130)
        self.stop_signal = signum
        # SLURM may send SIGTERM too (a preemption): SIGUSR2 is handed on whichever came last.
        self._usr2_received = self._usr2_received or signum == SIGUSR2
        name = signal.Signals(signum).name
        os.write(2, f"\nsac-train: {name} received, saving a checkpoint ...\n".encode())

    def _hand_on_signal(self) -> None:
        """After a stop that SIGUSR2 took part in (checkpoint written, files closed), call the
        SIGUSR2 handler that was installed before ours: under submitit (SLURM, or its local
        executor) that one requeues the job and exits, and the requeued job resumes from the
        checkpoint. Without one (SIG_DFL), train() returns and sac-train exits 128 + the signal."""
        previous = self._old_handlers.get(SIGUSR2)
        if not self._usr2_received or not callable(previous):
            return
        name = getattr(previous, "__qualname__", repr(previous))
        log.info("handing SIGUSR2 on to the handler installed before sac-train's: %s", name)
        previous(SIGUSR2, None)


class _EvalVideo:
    """One evaluation episode to an MP4. A video that cannot be written (disk full) is reported
    once and dropped: it must not stop the training run."""

    def __init__(self, path: Path, fps: int) -> None:
        self.path: Path | None = path
        self._writer = VideoWriter(path.parent, fps, name=lambda _: path.name)

    def add(self, episode: int, frame: np.ndarray) -> None:
        if self.path is None:
            return
        try:
            if episode == 0:
                self.path.parent.mkdir(exist_ok=True)
            self._writer.add(episode, frame)
        except OSError as e:
            log.error(
                "could not write the evaluation video %s (%s); training goes on", self.path, e
            )
            self.path = None
            self.close()

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as e:
            if self.path is not None:
                log.error("could not write the evaluation video %s (%s)", self.path, e)
            self.path = None


def _crossed(prev: int, now: int, every: int) -> bool:
    """True when a multiple of `every` lies in (prev, now]."""
    return every > 0 and now // every > prev // every


def _mean(values: deque) -> float | None:
    return float(np.mean(values)) if values else None


def _check_config(cfg: DictConfig) -> None:
    """Values Hydra's types cannot rule out; each error names the key and what would work."""
    checks = [
        (cfg.total_steps > 0, "total_steps must be > 0"),
        (cfg.eval_every >= 0, "eval_every must be >= 0 (0 evaluates only at the end)"),
        (cfg.eval_episodes > 0, "eval_episodes must be > 0"),
        (cfg.checkpoint_every >= 0, "checkpoint_every must be >= 0 (0 saves only at the end)"),
        (cfg.log_every > 0, "log_every must be > 0"),
        (
            cfg.matmul_precision in MATMUL_PRECISIONS,
            f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
            f"got '{cfg.matmul_precision}'",
        ),
        (cfg.keep_checkpoints >= 0, "keep_checkpoints must be >= 0 (0 keeps all)"),
        (cfg.env.num_envs >= 1, "env.num_envs must be >= 1"),
        (cfg.updates_per_call >= 1, "updates_per_call must be >= 1"),
        (cfg.agent.batch_size > 0, "agent.batch_size must be > 0"),
        (cfg.agent.buffer_size > 0, "agent.buffer_size must be > 0"),
        (cfg.agent.warmup_steps >= 0, "agent.warmup_steps must be >= 0"),
        (cfg.agent.updates_per_step >= 0, "agent.updates_per_step must be >= 0"),
        (cfg.agent.num_critics >= 1, "agent.num_critics must be >= 1"),
        (
            len(cfg.agent.hidden_sizes) > 0 and min(cfg.agent.hidden_sizes) > 0,
            "agent.hidden_sizes must be a non-empty list of positive sizes",
        ),
        (0.0 <= cfg.agent.gamma <= 1.0, "agent.gamma must be in [0, 1]"),
        (0.0 < cfg.agent.tau <= 1.0, "agent.tau must be in (0, 1]"),
        (cfg.agent.target_update_interval >= 1, "agent.target_update_interval must be >= 1"),
        (
            min(cfg.agent.actor_lr, cfg.agent.critic_lr, cfg.agent.alpha_lr) > 0,
            "agent.actor_lr, agent.critic_lr and agent.alpha_lr must be > 0",
        ),
        (cfg.agent.alpha > 0, "agent.alpha must be > 0"),
        (
            cfg.agent.log_std_min < cfg.agent.log_std_max,
            "agent.log_std_min must be < agent.log_std_max",
        ),
        (
            not cfg.agent.critic_hidden_sizes or min(cfg.agent.critic_hidden_sizes) > 0,
            "agent.critic_hidden_sizes must be null or a non-empty list of positive sizes",
        ),
        (
            cfg.agent.critic_norm in ("none", "layer", "batch"),
            f"agent.critic_norm must be none, layer or batch, got '{cfg.agent.critic_norm}'",
        ),
        (0.0 <= cfg.agent.critic_dropout < 1.0, "agent.critic_dropout must be in [0, 1)"),
        (
            cfg.agent.target_subset is None
            or 1 <= cfg.agent.target_subset <= cfg.agent.num_critics,
            "agent.target_subset must be null or between 1 and agent.num_critics",
        ),
        (
            cfg.agent.actor_q in ("min", "mean"),
            f"agent.actor_q must be min or mean, got '{cfg.agent.actor_q}'",
        ),
        (cfg.agent.actor_update_interval >= 1, "agent.actor_update_interval must be >= 1"),
        (0.0 <= cfg.agent.adam_beta1 < 1.0, "agent.adam_beta1 must be in [0, 1)"),
        (
            # Target networks would normalise (s', a') with their own lagging batch statistics,
            # which is what makes batch norm fail in SAC (Bhatt et al. 2024, section 3).
            not (cfg.agent.critic_norm == "batch" and cfg.agent.target_networks),
            "agent.critic_norm=batch needs agent.target_networks=false (CrossQ: one joint "
            "forward pass instead of target critics); or use agent=crossq",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise SACError(message)
    logger_names(cfg.logger, cfg.wandb.enabled)  # an unknown name: one line naming the choices
