"""`sac-eval` / `python -m sac.evaluate`: run a saved policy and summarise its returns."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from sac.config import (
    EvalConfig,
    config_dir,
    register_configs,
    stored_train_config,
    validated,
)
from sac.errors import SACError
from sac.video import VideoWriter, headless_rendering

headless_rendering()  # before anything imports MuJoCo
register_configs()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Load the checkpoint, rebuild env and actor from its stored config, run episodes."""
    import numpy as np
    import torch

    from sac.checkpoint import load_checkpoint, resolve_checkpoint
    from sac.envs import make_env, pixel_spec
    from sac.policy import actor_for_env
    from sac.rollout import evaluate_policy
    from sac.runtime import resolve_device
    from sac.seeding import eval_seed, stream_seed

    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise SACError("no checkpoint given; use sac-eval checkpoint=PATH (a .pt or a run dir)")
    validated(cfg, EvalConfig)  # the value checks (episodes >= 1)
    device = resolve_device(cfg.device)
    path = resolve_checkpoint(cfg.checkpoint)
    state = load_checkpoint(path, with_buffer=False)
    train_cfg = stored_train_config(state["config"], cfg.env_id, path=path)
    env = make_env(
        train_cfg.env.id,
        train_cfg.env.kwargs,
        render_mode="rgb_array" if cfg.video else None,
        action_repeat=train_cfg.env.action_repeat,  # the control rate the policy learned
        pixels=pixel_spec(train_cfg.env),  # the frames it learned from
    )
    agent = actor_for_env(state, env, train_cfg, device, path)

    out_dir = Path(cfg.output_dir) if cfg.output_dir else path.parent.parent / "eval" / path.stem
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SACError(f"cannot create {out_dir}: {e}; set output_dir=...") from None
    videos = VideoWriter(out_dir, env.metadata.get("render_fps", 30)) if cfg.video else None
    torch.manual_seed(stream_seed(cfg.seed, "torch"))  # the policy noise, for deterministic=false
    print(
        f"sac-eval: {path} ({train_cfg.env.id}, {cfg.episodes} episodes, "
        f"{'deterministic' if cfg.deterministic else 'stochastic'}, {device})",
        file=sys.stderr,
    )
    try:
        episodes = evaluate_policy(
            agent,
            env,
            cfg.episodes,
            eval_seed(cfg.seed),  # the trainer's evaluation episodes of a run with this seed
            deterministic=cfg.deterministic,
            on_frame=videos.add if videos else None,
        )
    except OSError as e:
        raise SACError(f"could not write a video to {out_dir}: {e}; set output_dir=...") from None
    finally:
        env.close()
        if videos:
            videos.close()
    returns, lengths = episodes.returns, episodes.lengths
    summary = {
        "checkpoint": str(path),
        "env": train_cfg.env.id,
        "checkpoint_steps": int(state["counters"]["env_steps"]),
        "episodes": len(returns),
        "deterministic": bool(cfg.deterministic),
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "min": float(np.min(returns)),
        "max": float(np.max(returns)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
    }
    if episodes.success_rate is not None:  # goal-conditioned envs report info["is_success"]
        summary["success_rate"] = episodes.success_rate
    if videos:
        summary["videos"] = [str(p) for p in videos.paths]
    try:
        (out_dir / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as e:
        raise SACError(f"could not write results to {out_dir}: {e}; set output_dir=...") from None
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def _main(cfg: DictConfig) -> None:
    try:
        summary = evaluate(cfg)
    except SACError as e:
        print(f"sac-eval: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
