"""`sac.learn`: training from Python with the config and overrides of `sac-train`.

Named `learn`, not `train`: the submodule sac/train.py (the CLI) would shadow a function
`sac.train` as soon as it is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def learn(overrides: list[str] | None = None, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train as `sac-train *overrides` would and return the run's summary (steps, episodes,
    checkpoint, eval_return, interrupted_by).

    `overrides` are the CLI's, e.g. ["env=hopper", "seed=3", "total_steps=50000"]; `run_dir` is
    where the run writes (default: conf/train.yaml's hydra.run.dir, a new timestamped directory
    under runs/, or the resumed run's own with resume=PATH). As with the CLI, resume=auto
    continues from a checkpoint already in `run_dir`.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.utils import setup_globals
    from omegaconf import OmegaConf, open_dict

    from sac.config import config_dir
    from sac.train import train  # registers the schemas and the run-directory resolvers

    overrides = list(overrides or [])
    setup_globals()  # Hydra's own resolvers (${now:...}) that hydra.run.dir uses
    with initialize_config_dir(version_base="1.3", config_dir=config_dir(), job_name="train"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if run_dir is None:
        run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    with open_dict(cfg):
        del cfg["hydra"]  # the task's config, as @hydra.main hands it to sac-train
    return train(cfg, Path(run_dir).absolute(), overrides)
