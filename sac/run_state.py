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
from sac.seeding import global_rng_state, set_global_rng_state

log = logging.getLogger("sac")


@dataclass
class Counters:
    """The counters of a run that a checkpoint keeps (the agent keeps its update count)."""

    step: int = 0  # env steps (transitions, summed over envs)
    episodes: int = 0
    last_eval: tuple[int, float] | None = None  # (step, mean return) of the last evaluation
    # each training env's episode in progress (sac.envs.EnvRunner); None in checkpoints
    # written before episodes were seeded one by one
    env_episodes: list[int] | None = None


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
    rng = {**global_rng_state(), "action": action_rng.get_state()}
    state = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "counters": {
            "env_steps": counters.step,
            "updates": agent.num_updates,
            "episodes": counters.episodes,
            "last_eval": list(counters.last_eval) if counters.last_eval else None,
            "env_episodes": counters.env_episodes,
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
    obs_shape: tuple[int, ...],
    act_dim: int,
    env_id: str,
) -> tuple[Counters, dict[str, Any]]:
    """Load a checkpoint written from `build_state` into the agent, buffer and generators;
    returns its counters and what it kept of the loggers."""
    # Loaded to the CPU and copied once into the device's tensors: loading to a GPU would hold
    # the saved buffer there beside the preallocated one, twice its memory.
    state = load_checkpoint(path, map_location="cpu", mmap=False)
    check_spaces(state, obs_shape, act_dim, env_id, agent.state_dim)
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
    if saved.get("env_episodes") is not None:
        counters.env_episodes = [int(k) for k in saved["env_episodes"]]
    set_global_rng_state(state["rng"])
    action_rng.set_state(state["rng"]["action"].cpu())
    return counters, dict(state.get("loggers", {}))  # checkpoints before the loggers: none
