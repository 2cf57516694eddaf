"""The training loop: warm-up, collect, update, evaluate, log, checkpoint.

Data flows one way: env -> transitions -> replay buffer -> batch -> agent.update -> metrics ->
logger. The trainer holds no maths; the agent holds no env, config or file code.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sac.agent import METRIC_NAMES, SAC, AgentConfig
from sac.buffer import ReplayBuffer
from sac.checkpoint import save_checkpoint, step_path
from sac.envs import EnvRunner, make_env, make_vector_env, space_dims
from sac.errors import SACError
from sac.logging import Progress, RunLogger

log = logging.getLogger("sac")


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
    frames: list[list[np.ndarray]] | None = None,
) -> tuple[list[float], list[int]]:
    """Run whole episodes; return their returns and lengths. `frames` collects renders."""
    returns, lengths = [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        ep_return, ep_len, done = 0.0, 0, False
        episode_frames: list[np.ndarray] = []
        if frames is not None:
            episode_frames.append(env.render())
        while not done:
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=agent.device)
            action = agent.act(obs_t.unsqueeze(0), deterministic=deterministic)[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            ep_return += float(reward)
            ep_len += 1
            done = terminated or truncated
            if frames is not None:
                episode_frames.append(env.render())
        returns.append(ep_return)
        lengths.append(ep_len)
        if frames is not None:
            frames.append(episode_frames)
        obs, _ = env.reset()
    return returns, lengths


class Trainer:
    """Owns the envs, buffer, agent and logger of one run; `train()` runs it to total_steps."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        _check_config(cfg)
        self.cfg = cfg
        self.run_dir = run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SACError(f"cannot create run directory {run_dir}: {e}") from None
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)

        self.envs = make_vector_env(
            cfg.env.id, cfg.env.kwargs, cfg.env.num_envs, cfg.env.vectorization
        )
        self.eval_env = make_env(cfg.env.id, cfg.env.kwargs)
        self.obs_dim, self.act_dim = space_dims(self.envs)
        self.agent = SAC(self.obs_dim, self.act_dim, agent_config(cfg), self.device)
        self.buffer = ReplayBuffer(
            min(cfg.agent.buffer_size, cfg.total_steps),
            self.obs_dim,
            self.act_dim,
            self.device,
            seed=cfg.seed,
        )
        self.runner = EnvRunner(self.envs, cfg.seed)
        # Warm-up actions come from a generator of their own, so they do not depend on the
        # policy's sampling noise.
        self.action_rng = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.episodes = 0
        self.last_eval: tuple[int, float] | None = None
        self.logger = RunLogger(run_dir, OmegaConf.to_container(cfg, resolve=True), cfg.wandb)

    # ----------------------------------------------------------------------------- loop
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        n_envs = cfg.env.num_envs
        warmup = cfg.agent.warmup_steps
        log.info("run directory: %s", self.run_dir)
        log.info(
            "env %s (obs %d, act %d, %d env(s)), device %s, %d steps",
            cfg.env.id,
            self.obs_dim,
            self.act_dim,
            n_envs,
            self.device,
            cfg.total_steps,
        )
        progress = Progress(cfg.total_steps)
        recent = deque(maxlen=10)
        metric_sum = torch.zeros(len(METRIC_NAMES), device=self.device)
        metric_count = 0
        updates_owed = 0.0
        sps, sps_mark = 0.0, (time.perf_counter(), 0)
        try:
            while self.step < cfg.total_steps:
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
                # updates, so a vector step of N envs earns N * updates_per_step of them.
                updates_owed += max(0, self.step - max(prev, warmup)) * cfg.agent.updates_per_step
                while updates_owed >= 1.0:
                    metric_sum += self.agent.update(self.buffer.sample(cfg.agent.batch_size))
                    metric_count += 1
                    updates_owed -= 1.0

                if _crossed(prev, self.step, cfg.log_every) or self.step >= cfg.total_steps:
                    now = time.perf_counter()
                    sps = (self.step - sps_mark[1]) / max(now - sps_mark[0], 1e-9)
                    sps_mark = (now, self.step)
                    row = {"perf/sps": sps, "perf/updates": self.agent.num_updates}
                    if metric_count:  # the one host sync of the interval
                        row.update(zip(METRIC_NAMES, (metric_sum / metric_count).tolist()))
                        metric_sum.zero_()
                        metric_count = 0
                    self.logger.log(self.step, row)
                    progress.update(self.step, sps, _mean(recent), self.last_eval, force=True)
                else:
                    progress.update(self.step, sps, _mean(recent), self.last_eval)

                if cfg.eval_every > 0 and _crossed(prev, self.step, cfg.eval_every):
                    self.evaluate()
                if _crossed(prev, self.step, cfg.checkpoint_every):
                    self.save()
            if self.last_eval is None or self.last_eval[0] != self.step:
                self.evaluate()
            path = self.save()
        finally:
            progress.close()
            self.close()
        summary = {
            "steps": self.step,
            "episodes": self.episodes,
            "checkpoint": str(path),
            "eval_return": self.last_eval[1] if self.last_eval else None,
        }
        log.info("done: %s", summary)
        return summary

    def evaluate(self) -> float:
        returns, lengths = evaluate_policy(
            self.agent, self.eval_env, self.cfg.eval_episodes, seed=self.cfg.seed + 10_000
        )
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
        log.info(
            "eval @%d: return %.1f +- %.1f over %d episodes",
            self.step,
            mean,
            float(np.std(returns)),
            len(returns),
        )
        return mean

    def state(self) -> dict[str, Any]:
        """The checkpoint payload: config, counters, agent and RNG states."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "action": self.action_rng.get_state(),
            "buffer": self.buffer.generator.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "counters": {
                "env_steps": self.step,
                "updates": self.agent.num_updates,
                "episodes": self.episodes,
            },
            "spaces": {"obs_dim": self.obs_dim, "act_dim": self.act_dim},
            "agent": self.agent.state_dict(),
            "rng": rng,
        }

    def save(self) -> Path:
        path = step_path(self.run_dir, self.step)
        try:
            save_checkpoint(self.state(), path)
        except OSError as e:
            raise SACError(f"could not write checkpoint {path}: {e}") from None
        log.info("checkpoint: %s", path)
        return path

    def close(self) -> None:
        self.runner.close()
        self.eval_env.close()
        self.logger.close()


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
        (cfg.env.num_envs >= 1, "env.num_envs must be >= 1"),
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
    ]
    for ok, message in checks:
        if not ok:
            raise SACError(message)
