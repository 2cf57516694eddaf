"""Whole episodes of a policy on one env: the evaluation loop of the trainer and of sac-eval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sac.agent import SAC
from sac.losses import Obs


@dataclass
class Episodes:
    """What evaluation episodes gave: per episode its return, length and, where the env reports
    one (goal-conditioned envs), its final step's info["is_success"]."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """The mean of the reported successes; None where the env reports none."""
        return float(np.mean(self.successes)) if self.successes else None


def evaluate_policy(
    agent: SAC,
    env: Any,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
    render_episodes: int | None = None,
) -> Episodes:
    """Run whole episodes. `on_frame(episode, frame)` gets each rendered frame as it comes (so
    videos stream to disk instead of piling up in memory), for the first `render_episodes`
    episodes (None: all); `stop` is asked between episodes and ends the evaluation early when
    it says so."""
    out = Episodes()
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        if stop is not None and stop():
            break
        ep_return, ep_len, done = 0.0, 0, False
        info: dict[str, Any] = {}
        render = on_frame is not None and (render_episodes is None or episode < render_episodes)
        if render:
            on_frame(episode, env.render())
        while not done:
            action = agent.act(_one(agent, obs), deterministic=deterministic)[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            ep_return += float(reward)
            ep_len += 1
            done = terminated or truncated
            if render:
                on_frame(episode, env.render())
        out.returns.append(ep_return)
        out.lengths.append(ep_len)
        if "is_success" in info:
            out.successes.append(float(info["is_success"]))
        obs, _ = env.reset()
    return out


def _one(agent: SAC, obs: Any) -> Obs:
    """An env's observation as the agent's batch of one: images (and the state beside them)
    as the env gives them, vectors as float32."""
    if isinstance(obs, dict):
        return {
            k: torch.as_tensor(np.asarray(v), device=agent.device)[None] for k, v in obs.items()
        }
    obs = np.asarray(obs) if agent.pixels else np.asarray(obs, dtype=np.float32)
    return torch.as_tensor(obs, device=agent.device)[None]
