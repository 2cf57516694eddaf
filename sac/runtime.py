"""Which torch device a run uses (its seeding is sac/seeding.py's job)."""

from __future__ import annotations

import torch

from sac.errors import SACError


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
