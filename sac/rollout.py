"""Whole episodes of a policy on one env: the evaluation loop of the trainer and of sac-eval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sac.agent import SAC


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
