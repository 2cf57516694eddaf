"""`sac-export` / `python -m sac.export`: write a checkpoint's deterministic actor as a standalone
policy file (ONNX and/or torch.export's .pt2) that maps raw observations to env actions, with a
JSON sidecar saying what a deployer needs to feed it.

Formats. `onnx` runs anywhere ONNX Runtime does (C++, C#, Java, JS, mobile) without PyTorch.
`pt2` is torch.export's ExportedProgram, PyTorch 2's deployment format: `torch.export.load` in
Python, or compiled ahead of time with AOTInductor for C++. TorchScript (`torch.jit`) is not
offered: PyTorch 2.13 marks `torch.jit.script`/`trace` deprecated in favour of torch.export, so
a new `.pt` file would be built on a path its users are told to leave.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sac.config import config_dir, register_configs
from sac.errors import SACError
from sac.losses import PIXELS, STATE
from sac.policy import (
    DeployedPolicy,
    ImageDictPolicy,
    KeyedPolicy,
    PixelStatePolicy,
    actor_for_env,
    image_index,
)

register_configs()

FORMATS = {"onnx": "policy.onnx", "pt2": "policy.pt2"}  # format -> file name in output_dir
SIDECAR = "policy.json"
INPUT_NAME, OUTPUT_NAME = "obs", "action"
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")  # the `export` extra
EXAMPLE_BATCH = 3  # batch size traced at export; the checks run other sizes (the axis is dynamic)
CHECK_BATCHES = (1, 17, 256)
POLICY = "deterministic: action = low + (tanh(mean(obs)) + 1) / 2 * (high - low)"
# agent.obs_norm=true: the file normalises raw observations itself, with the checkpoint's stats.
POLICY_OBS_NORM = (
    "deterministic: action = low + (tanh(mean(x)) + 1) / 2 * (high - low), "
    "x = clip((obs - mean) / std, -clip, clip) with the checkpoint's observation statistics"
)
# image observations: the critics' convolutional encoder, then the actor's head and MLP
POLICY_PIXELS = (
    "deterministic: action = low + (tanh(mean(encoder(obs))) + 1) / 2 * (high - low), obs the "
    "uint8 stacked frames"
)
# frames beside the state: the encoder's features and the state, side by side
POLICY_PIXELS_STATE = (
    "deterministic: action = low + (tanh(mean([encoder(pixels), state])) + 1) / 2 * "
    "(high - low), pixels the uint8 stacked frames, state the float32 state"
)


def export(cfg: DictConfig) -> dict[str, Any]:
    """Load the checkpoint, rebuild env and actor from its stored config, write and check the
    requested formats and the sidecar; return the sidecar's content."""
    from sac.checkpoint import load_checkpoint, resolve_checkpoint
    from sac.config import stored_train_config
    from sac.envs import action_bounds, make_env, obs_keys, pixel_spec
    from sac.runtime import resolve_device

    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise SACError("no checkpoint given; use sac-export checkpoint=PATH (a .pt or a run dir)")
    formats = parse_format(cfg.format)
    if "onnx" in formats:
        missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise SACError(
                f"format=onnx needs {', '.join(missing)}: pip install -e '.[export]' "
                "(or export format=pt2 only)"
            )
    device = resolve_device(cfg.device)
    path = resolve_checkpoint(cfg.checkpoint)
    state = load_checkpoint(path, with_buffer=False)
    train_cfg = stored_train_config(state["config"], cfg.env_id, path=path)
    env = make_env(train_cfg.env.id, train_cfg.env.kwargs, pixels=pixel_spec(train_cfg.env))
    try:
        agent = actor_for_env(state, env, train_cfg, device, path)
        shape, act_dim = agent.obs_shape, agent.act_dim
        low, high = action_bounds(env)
        check_obs = check_observations(env, shape)
        inputs = Inputs.of(obs_keys(env), shape, _torch_dtype(check_obs[0]), agent.state_dim)
        check_obs = inputs.parts(check_obs)
    finally:
        env.close()
    policy = inputs.module(DeployedPolicy.of(agent, low, high).to(device), shape)

    out_dir = Path(cfg.output_dir) if cfg.output_dir else path.parent.parent / "export" / path.stem
    check_writable(out_dir)
    print(
        f"sac-export: {path} ({train_cfg.env.id}) -> {out_dir} ({', '.join(formats)}, {device})",
        file=sys.stderr,
    )
    errors = {}
    for fmt in formats:
        writer = export_onnx if fmt == "onnx" else export_pt2
        with _written_atomically(out_dir / FORMATS[fmt]) as tmp:
            run = writer(policy, tmp, inputs)
            errors[fmt] = check_parity(policy, run, check_obs, fmt)

    info = {
        "checkpoint": str(path),
        "checkpoint_steps": int(state["counters"]["env_steps"]),
        "env": train_cfg.env.id,
        "env_kwargs": OmegaConf.to_container(train_cfg.env.kwargs, resolve=True),
        "action_repeat": train_cfg.env.action_repeat,  # hold each action for this many env steps
        "obs_dim": int(np.prod(shape)),
        "obs_shape": list(shape),
        "act_dim": act_dim,
        "action_low": low.tolist(),
        "action_high": high.tolist(),
        # images: uint8 (channels, height, width), the env's stacked frames oldest first; a
        # Dict observation: one input per key
        "inputs": [
            {"name": name, "dtype": str(dtype).removeprefix("torch."), "shape": ["batch", *s]}
            for name, s, dtype in zip(inputs.names, inputs.shapes, inputs.dtypes)
        ],
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", act_dim]},
        "policy": _policy_formula(agent),
        "formats": list(formats),
        "files": {fmt: FORMATS[fmt] for fmt in formats},
        "max_abs_error": errors,  # vs the PyTorch actor, over the check observations
        "torch_version": torch.__version__.split("+")[0],
    }
    if agent.state_dim:
        info["state_dim"] = agent.state_dim
    if not inputs.keyed:  # the one input of a file without a Dict observation
        info["input"] = info["inputs"][0]
    if "onnx" in formats:
        import onnx

        model = onnx.load(out_dir / FORMATS["onnx"], load_external_data=False)
        info["onnx_opset"] = next(o.version for o in model.opset_import if o.domain == "")
    _write_text(out_dir / SIDECAR, json.dumps(info, indent=2) + "\n")
    return info


def parse_format(spec: str) -> tuple[str, ...]:
    """onnx | pt2 | all -> the formats to write."""
    if spec == "all":
        return tuple(FORMATS)
    if spec in FORMATS:
        return (spec,)
    hint = (
        " (TorchScript is deprecated in PyTorch 2; pt2 is torch.export's replacement)"
        if spec in ("torchscript", "jit", "pt")
        else ""
    )
    raise SACError(f"format={spec} is not a known format; use onnx, pt2 or all{hint}")


def check_observations(env: Any, shape: tuple[int, ...], n: int = 512) -> list[np.ndarray]:
    """Observations the exported files are checked on: real reset observations of the env, then
    Gaussian ones at two scales (vectors) or uniform random pixels (uint8 images; fewer, as
    each is large), since a deployed policy may meet states training never saw. One array of
    flat observations; for frames beside the state, the frames and the states."""
    rng = np.random.default_rng(0)
    if len(shape) == 3:
        real = [env.reset(seed=i)[0] for i in range(4)]
        if isinstance(real[0], dict):  # frames beside the state
            states = np.stack([r[STATE] for r in real]).astype(np.float32)
            noise = _gaussian(rng, 28, states.shape[1:])
            frames = [np.stack([np.asarray(r[PIXELS], dtype=np.uint8) for r in real])]
            return [
                np.concatenate([*frames, _pixels(rng, 28, shape)]),
                np.concatenate([states, noise]),
            ]
        frames = [np.stack([np.asarray(r, dtype=np.uint8) for r in real])]
        return [np.concatenate([*frames, _pixels(rng, 28, shape)])]
    real = [np.asarray(env.reset(seed=i)[0], dtype=np.float32).reshape(-1) for i in range(8)]
    return [np.concatenate([np.stack(real), _gaussian(rng, n - len(real), shape)])]


def _pixels(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8)


def _gaussian(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """n standard normal float32 vectors, the second half scaled by 10."""
    noise = rng.standard_normal((n, *shape)).astype(np.float32)
    noise[n // 2 :] *= 10.0
    return noise


def _torch_dtype(obs: np.ndarray) -> torch.dtype:
    return torch.uint8 if obs.dtype == np.uint8 else torch.float32


def _policy_formula(agent: Any) -> str:
    """The sidecar's description of what the file computes."""
    if agent.state_dim:
        return POLICY_PIXELS_STATE
    if agent.encoder is not None:
        return POLICY_PIXELS
    return POLICY_OBS_NORM if agent.obs_norm is not None else POLICY


def check_writable(out_dir: Path) -> None:
    """Fail before exporting, with the fix, if `out_dir` cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise SACError(f"cannot write to output_dir {out_dir}: {e}; set output_dir=...") from None


Runner = Callable[[list[np.ndarray]], np.ndarray]  # the inputs (B, ...) -> float32 (B, act_dim)


@dataclass(frozen=True)
class Inputs:
    """The exported file's inputs, by `kind`: "obs", the one observation; "keys", one per key
    of an env's Dict of vectors (their values flattened and concatenated are the flat
    observation); "image_dict", one per key of an env's Dict holding an image (as the env
    gives them) or of frames beside a Dict state (`obs_keys`); "pixels_state", frames beside
    the state (env.pixels_state)."""

    kind: str
    names: list[str]
    shapes: list[tuple[int, ...]]
    dtypes: list[torch.dtype]

    @classmethod
    def of(
        cls,
        keys: list[tuple[str, tuple[int, ...]]] | None,
        shape: tuple[int, ...],
        dtype: Any,
        state_dim: int = 0,
    ) -> Inputs:
        names, shapes = [k for k, _ in keys or []], [s for _, s in keys or []]
        if keys is not None and len(shape) == 3:
            i = image_index(keys, shape)
            dtypes = [torch.uint8 if j == i else torch.float32 for j in range(len(keys))]
            return cls("image_dict", names, shapes, dtypes)
        if state_dim:
            shapes = [tuple(shape), (state_dim,)]
            return cls("pixels_state", [PIXELS, STATE], shapes, [torch.uint8, torch.float32])
        if keys is None:
            return cls("obs", [INPUT_NAME], [tuple(shape)], [dtype])
        return cls("keys", names, shapes, [dtype] * len(keys))

    @property
    def keyed(self) -> bool:
        return self.kind != "obs"

    def module(self, policy: DeployedPolicy, image_shape: tuple[int, ...]) -> torch.nn.Module:
        """`policy` taking these inputs as positional arguments."""
        if self.kind == "pixels_state":
            return PixelStatePolicy(policy)
        if self.kind == "image_dict":
            return ImageDictPolicy(policy, list(zip(self.names, self.shapes)), image_shape)
        return KeyedPolicy(policy) if self.kind == "keys" else policy

    def parts(self, agent_obs: list[np.ndarray]) -> list[np.ndarray]:
        """check_observations' arrays (the agent's observations: one flat array, or frames
        and states) as this file's inputs."""
        if self.kind in ("obs", "pixels_state"):
            return agent_obs
        if self.kind == "keys":
            return self.split(agent_obs[0])
        pixels = agent_obs[0]
        i = image_index(list(zip(self.names, self.shapes)), pixels.shape[1:])
        if pixels.shape[1:] != self.shapes[i]:  # the env's image is channels last
            pixels = pixels.transpose(0, 2, 3, 1)
        others = [s for j, s in enumerate(self.shapes) if j != i]
        state = agent_obs[1] if others else np.zeros((len(pixels), 0), np.float32)
        cuts = np.cumsum([math.prod(s) for s in others])[:-1]
        rest = [x.reshape(len(x), *s) for x, s in zip(np.split(state, cuts, axis=1), others)]
        return [*rest[:i], np.ascontiguousarray(pixels), *rest[i:]]

    def examples(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.zeros(EXAMPLE_BATCH, *s, dtype=d, device=device)
            for s, d in zip(self.shapes, self.dtypes)
        )

    def dynamic_shapes(self) -> dict[str, Any]:
        batch = torch.export.Dim("batch", min=1)
        if not self.keyed:
            return {"obs": {0: batch}}
        if self.kind == "pixels_state":
            return {PIXELS: {0: batch}, STATE: {0: batch}}
        return {"inputs": tuple({0: batch} for _ in self.names)}

    def split(self, obs: np.ndarray) -> list[np.ndarray]:
        """A batch of flat observations as the file's inputs."""
        if not self.keyed:
            return [obs]
        sizes = np.cumsum([math.prod(s) for s in self.shapes])[:-1]
        return [
            part.reshape(len(obs), *s) for part, s in zip(np.split(obs, sizes, axis=1), self.shapes)
        ]


def export_onnx(policy: torch.nn.Module, path: Path, inputs: Inputs) -> Runner:
    """Write `policy` (taking `inputs`) as ONNX, the batch axis dynamic, and return an ONNX
    Runtime runner of the file."""
    import onnxruntime as ort

    # torch.onnx's default exporter since 2.9 (dynamo=True, via torch.export + onnxscript); the
    # older TorchScript-based one is deprecated along with TorchScript. external_data=False keeps
    # the weights inside the one .onnx file (an actor is far below ONNX's 2 GB limit).
    with _quiet_exporter():
        torch.onnx.export(
            policy,
            inputs.examples(_device(policy)),
            str(path),
            input_names=inputs.names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=inputs.dynamic_shapes(),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda parts: session.run([OUTPUT_NAME], dict(zip(inputs.names, parts, strict=True)))[0]


def export_pt2(policy: torch.nn.Module, path: Path, inputs: Inputs) -> Runner:
    """Write `policy` (taking `inputs`) with torch.export, the batch axis dynamic; return a
    runner of the file as torch.export.load reads it back."""
    device = _device(policy)
    with _quiet_exporter():
        program = torch.export.export(
            policy, inputs.examples(device), dynamic_shapes=inputs.dynamic_shapes()
        )
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()

    def run(parts: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return loaded(*(torch.as_tensor(x, device=device) for x in parts)).cpu().numpy()

    return run


def _device(policy: torch.nn.Module) -> torch.device:
    return next(policy.buffers()).device  # (the action bounds)


def check_parity(policy: torch.nn.Module, run: Runner, parts: list[np.ndarray], fmt: str) -> float:
    """Max |exported - PyTorch| over the check inputs `parts` (one array per input, rows
    alike), fed in batches of other sizes than the traced one; an SACError if it exceeds
    float32 rounding at the action's scale."""
    device = _device(policy)
    with torch.no_grad():
        expected = policy(*(torch.as_tensor(x, device=device) for x in parts)).cpu().numpy()
    chunks, start, sizes = [], 0, itertools.cycle(CHECK_BATCHES)
    while start < len(parts[0]):
        size = next(sizes)
        chunks.append(np.asarray(run([x[start : start + size] for x in parts])))
        start += size
    got = np.concatenate(chunks)
    if got.shape != expected.shape:
        raise SACError(f"exported {fmt} policy returned shape {got.shape}, not {expected.shape}")
    err = float(np.max(np.abs(got - expected)))
    low, high = (b for name, b in policy.named_buffers() if name.endswith(("low", "high")))
    scale = max(1.0, float(low.abs().max()), float(high.abs().max()))
    if not err <= 1e-5 * scale:  # `not <=` also catches NaN
        raise SACError(
            f"exported {fmt} policy differs from the PyTorch actor by up to {err:.3g}; "
            "nothing was written for it (please report this with the checkpoint)"
        )
    return err


@contextlib.contextmanager
def _written_atomically(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it only if the block succeeds, so a failed
    export or parity check never leaves a file under the real name."""
    tmp = target.with_name(
        f".tmp-{os.getpid()}-{target.name}"
    )  # keep the suffix: exporters read it
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise SACError(f"could not write {target}: {e}; set output_dir=...") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise SACError(f"could not write {path}: {e}; set output_dir=...") from None


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' chatter (warnings about optional torchvision ops, deprecations
    inside torch itself) that says nothing about this export; errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
def _main(cfg: DictConfig) -> None:
    try:
        info = export(cfg)
    except SACError as e:
        print(f"sac-export: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(info))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
