"""Record what three short CPU runs end with, for tests/test_reproduction.py.

    python tests/record_reproduction.py     # rewrites tests/data/reproduction.json

Re-record only in a commit that means to change the numbers, and say so in its message.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from sac.checkpoint import load_checkpoint
from sac.config import config_dir, register_configs

DATA = Path(__file__).resolve().parent / "data" / "reproduction.json"
BASE = [
    "total_steps=1000",
    "agent.warmup_steps=300",
    "seed=0",
    "device=cpu",
    "eval_every=0",
    "eval_episodes=1",
    "checkpoint_every=0",
    "log_every=500",
]
RUNS = {"sac": [], "crossq": ["agent=crossq"], "compile": ["compile=true"]}


def run(name: str) -> dict[str, dict[str, list[float]]]:
    """Train run `name` in a temp dir; per agent tensor: shape, sum, sum of |x|, first values."""
    from sac.trainer import Trainer

    register_configs()
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            cfg = compose("train", overrides=[*BASE, *RUNS[name], f"hydra.run.dir={tmp}"])
        Trainer(cfg, Path(tmp)).train()
        state = load_checkpoint(Path(tmp) / "checkpoints" / "last.pt")["agent"]
    return summarise(state)


def summarise(state: dict) -> dict[str, dict[str, list[float]]]:
    out = {}
    for part in ("actor", "critic", "critic_target"):
        for key, t in (state[part] or {}).items():
            out[f"{part}.{key}"] = _stats(t)
    out["log_alpha"] = _stats(state["log_alpha"])
    return out


def _stats(t: torch.Tensor) -> dict[str, list[float]]:
    x = t.detach().double().flatten()
    return {
        "shape": list(t.shape),
        "sum": [float(x.sum())],
        "abs_sum": [float(x.abs().sum())],
        "first": [float(v) for v in x[:4]],
    }


if __name__ == "__main__":
    names = sys.argv[1:] or list(RUNS)
    data = json.loads(DATA.read_text()) if DATA.exists() else {}
    for name in names:
        data[name] = run(name)
        print(f"recorded {name}", file=sys.stderr)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
