"""What a checkpoint holds of a run, and putting it back: the config, the counters, the agent,
the replay buffer, the RNG states and what the loggers need to continue (the W&B run id).

The files themselves (atomic writes, safe loads, pruning) are sac/checkpoint.py's job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sac.agent import SAC
from sac.buffer import ReplayBuffer
from sac.checkpoint import check_spaces, load_checkpoint, restores_from_checkpoint

log = logging.getLogger("sac")


@dataclass
class Counters:
    """The counters of a run that a checkpoint keeps (the agent keeps its update count)."""

    step: int = 0  # env steps (transitions, summed over envs)
    episodes: int = 0
    last_eval: tuple[int, float] | None = None  # (step, mean return) of the last evaluation


def build_state(
    cfg: DictConfig,
    counters: Counters,
    agent: SAC,
    buffer: ReplayBuffer,
    action_rng: torch.Generator,
    spaces: dict[str, Any],
    loggers: dict[str, Any],
) -> dict[str, Any]:
    """The checkpoint payload. `spaces`: obs_dim, act_dim and the env's action bounds
    (action_low, action_high; checkpoints before them lack them)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "action": action_rng.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "counters": {
            "env_steps": counters.step,
            "updates": agent.num_updates,
            "episodes": counters.episodes,
            "last_eval": list(counters.last_eval) if counters.last_eval else None,
        },
        "spaces": spaces,
        "agent": agent.state_dict(),
        "rng": rng,
        "loggers": loggers,  # the W&B run id, so a resume continues that run
    }
    if cfg.save_buffer:
        state["buffer"] = buffer.state_dict()
    return state


@restores_from_checkpoint  # what does not fit (shapes, RNG states): one line naming the file
def restore_state(
    path: Path,
    agent: SAC,
    buffer: ReplayBuffer,
    action_rng: torch.Generator,
    obs_dim: int,
    act_dim: int,
    env_id: str,
) -> tuple[Counters, dict[str, Any]]:
    """Load a checkpoint written from `build_state` into the agent, buffer and generators;
    returns its counters and what it kept of the loggers."""
    state = load_checkpoint(path, map_location=agent.device, mmap=False)
    check_spaces(state, obs_dim, act_dim, env_id)
    agent.load_state_dict(state["agent"])
    if "buffer" in state:
        buffer.load_state_dict(state["buffer"])
    else:
        log.warning(
            "checkpoint %s holds no replay buffer (save_buffer=false): learning "
            "continues from an empty buffer",
            path,
        )
    saved = state["counters"]
    counters = Counters(int(saved["env_steps"]), int(saved["episodes"]))
    if saved.get("last_eval"):
        counters.last_eval = (int(saved["last_eval"][0]), float(saved["last_eval"][1]))
    rng = state["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    action_rng.set_state(rng["action"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    return counters, dict(state.get("loggers", {}))  # checkpoints before the loggers: none
