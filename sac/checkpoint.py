"""Checkpoint files: atomic writes, safe (weights_only) loads, a format version, pruning, and
the checks that make a damaged or crafted file one line instead of a traceback."""

from __future__ import annotations

import functools
import math
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import torch
from torch import Tensor

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


def saved_obs_shape(spaces: dict[str, Any]) -> tuple[int, ...]:
    """The observation shape a checkpoint's agent was built for: its `obs_shape`, or for
    checkpoints from before image observations, (obs_dim,)."""
    return tuple(int(n) for n in spaces.get("obs_shape", [spaces["obs_dim"]]))


def saved_obs_keys(spaces: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]] | None:
    """A Dict observation's keys and shapes in the order the flat observation holds them (see
    sac.envs.obs_keys), or None for other observations and checkpoints from before them."""
    keys = spaces.get("obs_keys")
    return None if keys is None else [(str(k), tuple(int(n) for n in s)) for k, s in keys]


def saved_state_dim(spaces: dict[str, Any]) -> int:
    """The size of the state a checkpoint's agent observed beside its frames (env.pixels_state),
    0 where it observed none."""
    return int(spaces.get("state_dim", 0))


def check_spaces(
    state: dict[str, Any],
    obs_shape: tuple[int, ...],
    act_dim: int,
    env_id: str,
    state_dim: int = 0,
) -> None:
    """Refuse a checkpoint trained on other observation/action shapes than `env_id` has."""
    spaces = state["spaces"]
    saved = (saved_obs_shape(spaces), spaces["act_dim"])
    if saved != (tuple(obs_shape), act_dim):
        raise SACError(
            f"the checkpoint was trained with obs shape {saved[0]} and {saved[1]} action "
            f"dims, but env {env_id} has {tuple(obs_shape)} and {act_dim} (for images: the "
            "env.pixels, env.image_size and env.frame_stack it was trained with)"
        )
    if saved_state_dim(spaces) != state_dim:
        raise SACError(
            f"the checkpoint observed a state of {saved_state_dim(spaces)} dims beside its "
            f"frames, but env {env_id} gives {state_dim} (0: none; the env.pixels_state it "
            "was trained with)"
        )


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    mmap: bool = True,
    with_buffer: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True (no arbitrary code runs) and check its version,
    its structure (`check_payload`) and its records' checksums.

    With `mmap` the file is memory-mapped, so parts the caller never touches are not read from
    disk; `with_buffer=False` says the replay buffer is one (only the actor is needed): the
    records only it uses are then not read to check them either, and it is left out of the
    result. A resume loads without mmap: tensors kept from a mapped file (optimizer moments)
    would pin the file's disk space after it is pruned.
    """
    p = resolve_checkpoint(path)
    if not zipfile.is_zipfile(p):  # torch.save's format is a zip archive
        raise SACError(
            f"'{p}' is not a readable sac checkpoint (not a PyTorch archive, or truncated); "
            "pass a .pt file written by sac-train"
        )
    # The pickle and metadata records first, so the unpickler only reads bytes as written.
    _check_crcs(p, lambda info: not _is_tensor_record(info))
    try:
        state = torch.load(p, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise SACError(
            f"'{p}' is not a readable sac checkpoint: it holds objects other than tensors and "
            "plain containers, and loading those could run code, so it is refused"
        ) from None
    except Exception as e:  # the unpickler raises many types on foreign or damaged files
        raise SACError(
            f"'{p}' is not a readable sac checkpoint ({type(e).__name__}: {_first_line(e)}); "
            "pass a .pt file written by sac-train"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise SACError(f"'{p}' is a PyTorch file but not a sac checkpoint (no format_version)")
    version = state["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise SACError(
            f"'{p}' has checkpoint format version {str(version)[:20]}; this sac reads "
            f"version {FORMAT_VERSION}"
        )
    check_payload(state, p)
    unread = set() if with_buffer else _buffer_only_sizes(state)
    _check_crcs(p, lambda info: _is_tensor_record(info) and info.file_size not in unread)
    if not with_buffer:
        state.pop("buffer", None)
    return state


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else ""


# torch.save stores the CRC-32 of every record in the zip archive, but PyTorch's reader does not
# check them: a flipped bit in a tensor's bytes loads as a different number, silently. zipfile
# checks them as it reads (about 3 GB/s here); checkpoints of format 1 have always had them.
def _check_crcs(p: Path, selected: Callable[[zipfile.ZipInfo], bool]) -> None:
    """Read the `selected` records of checkpoint `p` through zipfile, which checks their CRC-32."""
    try:
        with zipfile.ZipFile(p) as archive:
            for info in archive.infolist():
                if selected(info):
                    with archive.open(info) as record:
                        while record.read(1 << 24):
                            pass
    except Exception as e:  # BadZipFile (a CRC or header mismatch), EOFError, OSError, ...
        raise SACError(
            f"'{p}' is damaged ({type(e).__name__}: {_first_line(e)}); its bytes changed after "
            "sac-train wrote it: pass another checkpoint (an earlier step_*.pt)"
        ) from None


def _is_tensor_record(info: zipfile.ZipInfo) -> bool:
    """A tensor's bytes: <archive>/data/<key> (beside <archive>/data.pkl and small metadata)."""
    return info.filename.partition("/")[2].startswith("data/")


def _buffer_only_sizes(state: dict[str, Any]) -> set[int]:
    """The sizes of the records only the replay buffer's tensors can be: leaving these
    unchecked keeps sac-eval from reading a large buffer, and every record of another size,
    so every one the agent uses, is still checked."""
    if "buffer" not in state:
        return set()
    rest = [state["agent"], state.get("rng")]  # where else check_payload lets tensors be
    return {t.untyped_storage().nbytes() for t in _tensors(state["buffer"])} - {
        t.untyped_storage().nbytes() for t in _tensors(rest)
    }


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


def check_payload(state: dict[str, Any], path: str | Path) -> None:
    """Refuse, in one line, a loaded checkpoint that is not shaped as run_state.build_state
    writes it, so a damaged or crafted file stops here rather than as a KeyError or TypeError in
    whatever reads it. The config's content is stored_train_config's job (sac/config.py); the
    tensors' shapes depend on it and are checked where they are loaded (`restoring_from`)."""
    problem = _payload_problem(state)
    if problem:
        raise SACError(f"'{path}' is damaged or not a sac checkpoint: {problem}")


_OPTIMIZERS = ("actor_optim", "critic_optim", "alpha_optim")
_BUFFER_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")  # sac/buffer.py's


def _payload_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a payload's structure, or None. Parts older checkpoints lack (the
    action bounds, last_eval, loggers) and optional ones (the buffer) are checked if present;
    the RNG states only loosely (tensors and plain data), as their set grows between versions."""
    for key in ("config", "counters", "spaces", "agent"):
        if not isinstance(state.get(key), dict):
            return f"its {key} is missing or not a dictionary"
    for key in ("rng", "buffer", "loggers"):
        if key in state and not isinstance(state[key], dict):
            return f"its {key} is not a dictionary"
    counters, spaces, agent = state["counters"], state["spaces"], state["agent"]
    for key in ("env_steps", "updates", "episodes"):
        if not _count(counters.get(key)):
            return f"counters.{key} is not an integer >= 0"
    last_eval = counters.get("last_eval")
    if last_eval is not None and not (
        isinstance(last_eval, list | tuple)
        and len(last_eval) == 2
        and _count(last_eval[0])
        and _number(last_eval[1])
    ):
        return "counters.last_eval is neither null nor [step, mean return]"
    for key in ("obs_dim", "act_dim"):
        if not _count(spaces.get(key), least=1):
            return f"spaces.{key} is not an integer >= 1"
    shape = spaces.get("obs_shape", [spaces["obs_dim"]])
    if not (
        isinstance(shape, list | tuple)
        and len(shape) in (1, 3)
        and all(_count(n, least=1) for n in shape)
        and math.prod(shape) == spaces["obs_dim"]
    ):
        return "spaces.obs_shape is not a vector's or an image's shape of obs_dim entries"
    state_dim = spaces.get("state_dim", 0)
    if not (_count(state_dim) and (state_dim == 0 or len(shape) == 3)):
        return "spaces.state_dim is not an integer >= 0 (beside image observations only)"
    keys = spaces.get("obs_keys")
    if keys is not None and not (
        isinstance(keys, list | tuple)
        and all(
            isinstance(k, list | tuple)
            and len(k) == 2
            and isinstance(k[0], str)
            and isinstance(k[1], list | tuple)
            and all(_count(n, least=1) for n in k[1])
            for k in keys
        )
        # (a Dict holding an image: the image gives obs_dim entries, the others state_dim)
        and sum(math.prod(k[1]) for k in keys) == spaces["obs_dim"] + state_dim
    ):
        return (
            "spaces.obs_keys is not a list of [key, shape] adding up to obs_dim + state_dim entries"
        )
    for key in ("action_low", "action_high"):
        bounds = spaces.get(key, [])
        if not (
            isinstance(bounds, list | tuple)
            and len(bounds) in (0, spaces["act_dim"])
            and all(_number(b) and math.isfinite(b) for b in bounds)
        ):
            return f"spaces.{key} is not a list of {spaces['act_dim']} finite numbers"
    for key in ("actor", "critic", "critic_target"):
        if not (_tensor_dict(agent.get(key)) or (key == "critic_target" and agent[key] is None)):
            return f"agent.{key} is missing or not a dictionary of tensors"
    if not isinstance(agent.get("log_alpha"), Tensor):
        return "agent.log_alpha is missing or not a tensor"
    for key in _OPTIMIZERS:
        optim = agent.get(key)
        if not (
            isinstance(optim, dict)
            and isinstance(optim.get("state"), dict)
            and isinstance(optim.get("param_groups"), list)
            and all(isinstance(g, dict) for g in optim["param_groups"])
            and _plain(optim)
        ):
            return f"agent.{key} is missing or not an optimizer's state"
    if not _count(agent.get("num_updates")):
        return "agent.num_updates is not an integer >= 0"
    if not _plain(state.get("rng")):
        return "its rng holds something other than tensors and plain data"
    if "buffer" in state and (problem := _buffer_problem(state["buffer"])):
        return f"buffer.{problem}"
    run_id = state.get("loggers", {}).get("wandb_run_id")
    if run_id is not None and not isinstance(run_id, str):
        return "loggers.wandb_run_id is not a string"
    return None


def _buffer_problem(buffer: dict[str, Any]) -> str | None:
    """What is wrong with a saved ReplayBuffer.state_dict (or FrameReplayBuffer's, for images),
    or None (its row shapes depend on the env: load_state_dict checks them)."""
    if "frames" in buffer:
        from sac.frames import FrameReplayBuffer

        return FrameReplayBuffer.state_problem(buffer)
    if not _count(buffer.get("capacity"), least=1):
        return "capacity is not an integer >= 1"
    capacity = buffer["capacity"]
    if not (_count(buffer.get("size")) and buffer["size"] <= capacity):
        return f"size is not an integer in [0, {capacity}]"
    if not (_count(buffer.get("pos")) and buffer["pos"] < capacity):
        return f"pos is not an integer in [0, {capacity})"
    for key in (*_BUFFER_FIELDS, "generator"):
        if not isinstance(buffer.get(key), Tensor):
            return f"{key} is missing or not a tensor"
        if key != "generator" and (buffer[key].ndim == 0 or len(buffer[key]) != buffer["size"]):
            return f"{key} does not hold size={buffer['size']} rows"
    return None


def _count(value: Any, least: int = 0) -> bool:
    return type(value) is int and value >= least


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _tensor_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items()
    )


def _plain(value: Any, depth: int = 0) -> bool:
    """Tensors, numbers, strings, None and containers of them, nested no deeper than is sane
    (a crafted pickle can nest lists deep enough to exhaust the recursion limit)."""
    if depth > 16:
        return False
    if value is None or isinstance(value, Tensor | bool | int | float | str | bytes):
        return True
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v, depth + 1) for v in value)
    return False


_LOAD_ERRORS = (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError)


@contextmanager
def restoring_from(path: str | Path) -> Iterator[None]:
    """Where a checkpoint's tensors go into live objects (load_state_dict, set_rng_state), turn
    what does not fit (a shape, a dtype, a missing entry) into one SACError line naming the
    file: the shapes follow from the stored config, which check_payload does not interpret."""
    try:
        yield
    except _LOAD_ERRORS as e:
        # PyTorch's load_state_dict lists its mismatches on several lines
        detail = f"missing entry {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
        raise SACError(
            f"'{path}' is damaged or does not fit the agent its config describes: {detail[:300]}"
        ) from None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def restores_from_checkpoint(
    fn: Callable[Concatenate[Path, _P], _R],
) -> Callable[Concatenate[Path, _P], _R]:
    """`restoring_from` around a function whose first argument is the checkpoint's path."""

    @functools.wraps(fn)
    def wrapper(path: Path, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with restoring_from(path):
            return fn(path, *args, **kwargs)

    return wrapper
