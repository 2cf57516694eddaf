"""`sac-train` / `python -m sac.train`: the thin Hydra entry point around `Trainer`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sac.config import config_dir, register_configs
from sac.errors import SACError

register_configs()


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train with a composed config into `run_dir`; returns a summary (testable without Hydra)."""
    from sac.trainer import Trainer  # torch and gymnasium load only once the config is valid

    return Trainer(cfg, run_dir).train()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _main(cfg: DictConfig) -> None:
    try:
        train(cfg, Path(HydraConfig.get().runtime.output_dir))
    except SACError as e:
        print(f"sac-train: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("sac-train: interrupted", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
