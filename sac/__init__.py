"""sac: Soft Actor-Critic for continuous control with PyTorch, Gymnasium and Hydra.

The Python API: `SAC` and `AgentConfig` (the agent), `learn` (train as sac-train does),
`load_policy` (a trained `Policy`), `Batch`. They load lazily, so `import sac` and the CLIs
stay light until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "SAC": "sac.agent",
    "Batch": "sac.agent",
    "AgentConfig": "sac.config",
    "learn": "sac.api",
    "load_policy": "sac.policy",
    "Policy": "sac.policy",
}
__all__ = ["SAC", "AgentConfig", "Batch", "Policy", "__version__", "learn", "load_policy"]

if TYPE_CHECKING:
    from sac.agent import SAC, Batch
    from sac.api import learn
    from sac.config import AgentConfig
    from sac.policy import Policy, load_policy


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'sac' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
