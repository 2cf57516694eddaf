"""Checkpoint files: atomic writes, safe (weights_only) loads, a format version, pruning."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from sac.errors import SACError

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def step_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:010d}.pt"


def save_checkpoint(state: dict[str, Any], path: Path, keep: int = 0) -> None:
    """Write `state` (plus the format version) to `path` atomically, point last.pt at it, and
    delete all but the newest `keep` step files (0 keeps all).

    The data goes to a temporary file in the same directory, is fsynced, and is renamed over the
    target, so a reader, or a process killed at any moment, sees either the old files or the
    complete new one: never a half-written checkpoint under a real name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    payload = {"format_version": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    _link_last(path)
    if keep > 0:
        for old in step_checkpoints(path.parent)[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (it lives in the directory's entries)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_last(path: Path) -> None:
    """Make <dir>/last.pt the same file as `path` (a hard link; a copy where links fail)."""
    last = path.parent / LAST
    tmp = path.parent / f".{LAST}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, last)


def step_checkpoints(directory: Path) -> list[Path]:
    """The step_*.pt files in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), f) for f in directory.iterdir() if (m := _STEP_FILE.match(f.name))]
    return [f for _, f in sorted(found)]


def checkpoint_dir(path: str | Path) -> Path:
    """The directory holding the checkpoints of a run directory (or the directory itself)."""
    p = Path(path).expanduser()
    return p / CHECKPOINT_DIR if (p / CHECKPOINT_DIR).is_dir() else p


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory / checkpoints directory meaning its latest one."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SACError(f"checkpoint '{path}' does not exist; pass a .pt file or a run directory")
    if p.is_file():
        return p
    ckpt_dir = checkpoint_dir(p)
    steps = step_checkpoints(ckpt_dir)
    if steps:
        return steps[-1]
    if (ckpt_dir / LAST).is_file():
        return ckpt_dir / LAST
    raise SACError(f"no checkpoint found in '{path}' (looked for {ckpt_dir}/step_*.pt)")


def check_spaces(state: dict[str, Any], obs_dim: int, act_dim: int, env_id: str) -> None:
    """Refuse a checkpoint trained on other observation/action sizes than `env_id` has."""
    saved = (state["spaces"]["obs_dim"], state["spaces"]["act_dim"])
    if saved != (obs_dim, act_dim):
        raise SACError(
            f"the checkpoint was trained with obs/act dims {saved}, but env {env_id} has "
            f"{(obs_dim, act_dim)}"
        )


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = True
) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True (no arbitrary code runs) and check its version.

    With `mmap` the file is memory-mapped, so parts the caller never touches (such as a saved
    replay buffer when only the actor is needed) are not read from disk. A resume loads without
    it: tensors kept from a mapped file (optimizer moments) would pin the file's disk space
    after it is pruned.
    """
    p = resolve_checkpoint(path)
    if not zipfile.is_zipfile(p):  # torch.save's format is a zip archive
        raise SACError(
            f"'{p}' is not a readable sac checkpoint (not a PyTorch archive, or truncated); "
            "pass a .pt file written by sac-train"
        )
    try:
        state = torch.load(p, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise SACError(
            f"'{p}' is not a readable sac checkpoint: it holds objects other than tensors and "
            "plain containers, and loading those could run code, so it is refused"
        ) from None
    except Exception as e:  # the unpickler raises many types on foreign or damaged files
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise SACError(
            f"'{p}' is not a readable sac checkpoint ({type(e).__name__}: {detail}); "
            "pass a .pt file written by sac-train"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise SACError(f"'{p}' is a PyTorch file but not a sac checkpoint (no format_version)")
    if state["format_version"] != FORMAT_VERSION:
        raise SACError(
            f"'{p}' has checkpoint format version {state['format_version']}; this sac reads "
            f"version {FORMAT_VERSION}"
        )
    return state
