"""Gymnasium adapters: checked, action-rescaled envs (observing the state, or rendered frames
with `PixelSpec`); vector envs; a runner that yields clean transitions (never one that spans a
reset), seeds every episode and counts finished ones; the goal API of goal-conditioned envs
(where the goals lie in the flat observation, their reward)."""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import _find_spec, load_env_creator
from gymnasium.vector import AutoresetMode

from sac.config import EnvConfig
from sac.errors import SACError
from sac.losses import PIXELS, STATE
from sac.seeding import env_seed
from sac.video import headless_rendering

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Env id prefixes whose envs are registered by importing a package (an optional extra of sac):
# (prefix, module, extra). A fixed table: env ids never name the module to import here.
ENV_PACKAGES = (("dm_control/", "shimmy", "dmc"), ("Fetch", "gymnasium_robotics", "robotics"))
# What is known of a package's envs failing to build (an assertion inside the package).
BUILD_FAILURES = {
    "robotics": "gymnasium-robotics 1.4.2 cannot build the Fetch tasks with MuJoCo >= 3.12 (from "
    "3.12 on, its set_joint_qpos finds a numpy joint type in no tuple of MuJoCo's enums); they "
    "build with mujoco < 3.12 (docs/configuration.md, Fetch)",
}
# The keys of a goal-conditioned env's observation dict (the Gymnasium-Robotics goal API).
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
# What makes a machine without a screen render MuJoCo and DMC frames.
RENDER_FIX = (
    "to render without a screen set MUJOCO_GL=egl and install the EGL and OpenGL libraries "
    "(Debian: apt-get install libegl1 libgl1), or MUJOCO_GL=osmesa with libosmesa6"
)


@dataclass(frozen=True)
class PixelSpec:
    """Observe rendered frames instead of the state: RGB frames of `size` x `size`, the last
    `frame_stack` of them stacked channels-first, oldest first, as uint8 of shape
    (3 * frame_stack, size, size)."""

    size: int = 84
    frame_stack: int = 3
    camera_id: int | None = None  # MuJoCo and DMC envs only; None: the env's default camera
    # observe the flat state beside the frames: a dict {PIXELS: the stack, STATE: the state}
    state: bool = False

    def __post_init__(self) -> None:
        # EnvConfig's checks and messages, so make_env's callers get the same bounds as the CLI
        EnvConfig(
            pixels=True,
            image_size=self.size,
            frame_stack=self.frame_stack,
            camera_id=self.camera_id,
            pixels_state=self.state,
        )


def pixel_spec(env_cfg: EnvConfig | DictConfig) -> PixelSpec | None:
    """The PixelSpec of an env config (EnvConfig or its DictConfig); None without env.pixels."""
    if not env_cfg.pixels:
        return None
    state = bool(getattr(env_cfg, "pixels_state", False))  # older saved configs lack it
    return PixelSpec(env_cfg.image_size, env_cfg.frame_stack, env_cfg.camera_id, state)


def make_env(
    env_id: str,
    kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
    action_repeat: int = 1,
    pixels: PixelSpec | None = None,
) -> gym.Env:
    """gymnasium.make plus the checks and wrappers SAC needs.

    The returned env takes actions in [-1, 1]^dim(A) (mapped linearly to the env's bounds),
    gives flat float observations, and with `action_repeat` = k holds each action for k env
    steps (frames), summing their rewards. With `pixels` it observes rendered frames instead
    (uint8, (3 * pixels.frame_stack, pixels.size, pixels.size), oldest frame first), rendered
    once per held action; it renders once here, so a machine that cannot render fails now.
    """
    kwargs = dict(kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if action_repeat < 1:
        raise SACError(f"env.action_repeat must be >= 1, got {action_repeat}")
    # Before anything imports MuJoCo or dm_control, which pick their OpenGL backend once per
    # process: a DMC env built first without it would leave later pixel envs a GLFW that
    # cannot render without a screen. A user's own MUJOCO_GL wins.
    headless_rendering()
    if pixels is not None:
        if kwargs.get("render_mode") not in (None, "rgb_array"):
            raise SACError(
                f"env.pixels renders rgb_array frames; render_mode '{kwargs['render_mode']}' "
                "cannot be used with it"
            )
        _load_mujoco_gl(env_id)
    _register_package(env_id)
    try:
        if pixels is not None:
            kwargs.update(_render_kwargs(env_id, kwargs, pixels))
        env = gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv as e:
        raise SACError(
            f"unknown Gymnasium env id '{env_id}' ({e}); set env.id to a registered id"
            " such as Pendulum-v1 or HalfCheetah-v5"
        ) from None
    except gym.error.DependencyNotInstalled as e:
        raise SACError(f"env '{env_id}' needs a missing dependency: {e}") from None
    except TypeError as e:
        raise SACError(f"env '{env_id}' rejected env.kwargs {kwargs}: {e}") from None
    except AssertionError as e:
        extra = _package_extra(env_id)
        if extra is None:  # an env of the user's own: its traceback is what helps
            raise
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise SACError(
            f"env '{env_id}' failed to build inside its package (AssertionError in "
            f"{Path(where.filename).name}:{where.lineno} {where.name}); "
            f"{BUILD_FAILURES.get(extra, 'the package and its dependencies may not fit')}"
        ) from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        env.close()
        raise SACError(
            f"env '{env_id}' has action space {space}; SAC needs a continuous Box action space "
            "(for discrete actions use an algorithm such as DQN or PPO)"
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise SACError(
            f"env '{env_id}' has unbounded action space {space}; SAC needs finite bounds"
        )
    if len(space.shape) != 1:
        env.close()
        raise SACError(f"env '{env_id}' has action shape {space.shape}; SAC needs a 1-D Box")
    if action_repeat > 1:
        # inside the rendering: a held action is rendered once, after its last frame
        env = gym.wrappers.RepeatAction(env, action_repeat)
    if pixels is not None:
        env = _observe_pixels(env, env_id, pixels)
    elif is_image_space(env.observation_space):
        env = _images_channels_first(env)
    elif (key := _image_key(env.observation_space, env_id)) is not None:
        env = _image_beside_state(env, key)
    elif not (
        isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) == 1
    ):
        env = gym.wrappers.FlattenObservation(env)
    # The policy acts in [-1, 1]; this maps to [low, high] at the env boundary.
    ones = np.ones(space.shape, dtype=space.dtype)
    return gym.wrappers.RescaleAction(env, -ones, ones)


def _package_extra(env_id: str) -> str | None:
    """The extra of sac whose package provides `env_id` (ENV_PACKAGES), or None."""
    return next((extra for prefix, _, extra in ENV_PACKAGES if env_id.startswith(prefix)), None)


def _register_package(env_id: str) -> None:
    """Import the package that registers `env_id`'s namespace (ENV_PACKAGES), or say which
    extra installs it."""
    for prefix, module, extra in ENV_PACKAGES:
        if env_id.startswith(prefix) and env_id not in gym.registry:
            try:
                gym.register_envs(importlib.import_module(module))
            except ImportError as e:
                raise SACError(
                    f"env '{env_id}' needs the {extra} extra ({e}): pip install 'sac[{extra}]'"
                ) from None


def _render_kwargs(env_id: str, kwargs: dict[str, Any], pixels: PixelSpec) -> dict[str, Any]:
    """gymnasium.make's keyword arguments that make `env_id` render RGB frames of pixels.size
    from pixels.camera_id: Shimmy's `render_kwargs` for DMC, `width`, `height` and `camera_id`
    for Gymnasium's MuJoCo envs; any other env renders at its own size (resized after)."""
    # gymnasium.make's own lookup (module:Env-v0 ids, unversioned ids), so both find one spec
    entry_point = _find_spec(env_id).entry_point
    creator = entry_point if callable(entry_point) else load_env_creator(entry_point)
    # Loaded with the class of any Gymnasium MuJoCo env; looked up, not imported, so that
    # Pendulum-v1 and other envs without MuJoCo never load MuJoCo's OpenGL backend.
    mujoco_env = sys.modules.get("gymnasium.envs.mujoco.mujoco_env")
    metadata = getattr(creator, "metadata", None)  # a class's; Shimmy's functions have none
    if isinstance(metadata, dict) and "rgb_array" not in metadata.get("render_modes", []):
        raise SACError(
            f"env '{env_id}' cannot render rgb_array frames (its render modes: "
            f"{metadata.get('render_modes', [])}); env.pixels=true needs an env that can"
        )
    size = {"width": pixels.size, "height": pixels.size}
    camera = {} if pixels.camera_id is None else {"camera_id": pixels.camera_id}
    if env_id.startswith("dm_control/"):
        own: dict[str, Any] = {"render_kwargs": {**size, **camera}}
    elif mujoco_env and isinstance(creator, type) and issubclass(creator, mujoco_env.MujocoEnv):
        own = {**size, **camera}
    elif pixels.camera_id is not None:
        raise SACError(
            f"env.camera_id picks a MuJoCo or DMC camera and '{env_id}' has none to pick; "
            "set env.camera_id=null"
        )
    else:
        own = {}
    clash = sorted(set(own) & set(kwargs))
    if clash:
        raise SACError(
            f"env.kwargs sets {', '.join(clash)}, which env.pixels sets from env.image_size and "
            "env.camera_id; remove it from env.kwargs"
        )
    return {"render_mode": "rgb_array", **own}


def _load_mujoco_gl(env_id: str) -> None:
    """Import MuJoCo for a DMC or Gymnasium MuJoCo env: it loads the OpenGL backend MUJOCO_GL
    names at import, and a wrong name or missing library is one line here, not a traceback."""
    spec = gym.registry.get(env_id)
    mujoco_entry = spec is not None and str(spec.entry_point).startswith("gymnasium.envs.mujoco")
    if not (env_id.startswith("dm_control/") or mujoco_entry) or "mujoco" in sys.modules:
        return
    try:
        importlib.import_module("mujoco")
    except Exception as e:  # RuntimeError (a bad MUJOCO_GL), or a missing library's own error
        detail = " ".join(str(e).split())[:200]
        raise SACError(
            f"env '{env_id}': MuJoCo cannot load its OpenGL backend for MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL', '')} ({type(e).__name__}: {detail}); {RENDER_FIX}"
        ) from None


def is_image_space(space: gym.Space) -> bool:
    """Whether an env's own observations are images: a 3-d uint8 Box, channels first or last
    (1, 3 or 4 channels)."""
    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and (space.shape[0] in (1, 3, 4) or space.shape[-1] in (1, 3, 4))
    )


def _images_channels_first(env: gym.Env) -> gym.Env:
    """An env whose observations are images, as the encoder takes them: channels-first uint8
    (C, H, W), one image per observation (stacking, if wanted, is the env's own)."""
    first, height, last = env.observation_space.shape
    if not (last in (1, 3, 4) and first not in (1, 3, 4)):
        return env  # already channels-first
    space = gym.spaces.Box(0, 255, (last, first, height), np.uint8)
    return gym.wrappers.TransformObservation(env, _channels_first, space)


def _image_key(space: gym.Space, env_id: str) -> str | None:
    """The key of the one image (`is_image_space`) in a Dict observation of Boxes; None where
    the observation is no Dict or holds no image."""
    if not isinstance(space, gym.spaces.Dict):
        return None
    images = [key for key, sub in space.items() if is_image_space(sub)]
    if not images:
        return None
    if len(images) > 1 or not all(isinstance(sub, gym.spaces.Box) for sub in space.values()):
        raise SACError(
            f"env '{env_id}' observes {space}; SAC takes a Dict of one image and vectors (the "
            "image through the encoder, the rest beside it): drop the others with "
            "gymnasium.wrappers.FilterObservation"
        )
    return images[0]


def _image_beside_state(env: gym.Env, key: str) -> gym.Env:
    """An env whose Dict observation holds an image at `key`, observing {PIXELS: the image,
    channels-first uint8, STATE: its other entries flattened and concatenated in the Dict's key
    order, float32}, as env.pixels_state does; the image alone where there is nothing else."""
    space = env.observation_space
    first, height, last = space[key].shape
    last_channels = last in (1, 3, 4) and first not in (1, 3, 4)
    shape = (last, first, height) if last_channels else (first, height, last)
    pixels = gym.spaces.Box(0, 255, shape, np.uint8)
    others = [k for k in space if k != key]

    def image(obs: dict[str, Any]) -> np.ndarray:
        return _channels_first(obs[key]) if last_channels else np.asarray(obs[key])

    if not others:
        wrapped = gym.wrappers.TransformObservation(env, image, pixels)
    else:
        size = sum(gym.spaces.flatdim(space[k]) for k in others)
        state = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

        def observe(obs: dict[str, Any]) -> dict[str, np.ndarray]:
            parts = [np.asarray(obs[k], dtype=np.float32).reshape(-1) for k in others]
            return {PIXELS: image(obs), STATE: np.concatenate(parts)}

        wrapped = gym.wrappers.TransformObservation(
            env, observe, gym.spaces.Dict({PIXELS: pixels, STATE: state})
        )
    wrapped.image_dict = space  # for obs_keys: what the env itself observes
    return wrapped


def _observe_pixels(env: gym.Env, env_id: str, pixels: PixelSpec) -> gym.Env:
    """`env` (rendering rgb_array frames) observing the stack of its last pixels.frame_stack
    frames, channels-first, oldest first: uint8 of shape (3 * frame_stack, size, size)."""
    camera = pixels.camera_id
    ncam = _camera_count(env)
    # checked before the first render: MuJoCo aborts the whole process on a bad camera id
    if camera is not None and camera >= 0 and ncam is not None and camera >= ncam:
        env.close()
        ids = "no fixed camera" if ncam == 0 else f"fixed camera ids 0 to {ncam - 1}"
        raise SACError(
            f"env.camera_id={camera} but '{env_id}' has {ids}; set env.camera_id to "
            f"{'' if ncam == 0 else 'one of them, '}-1 (the free camera) or null (the env's "
            "default)"
        )
    if pixels.state and not _is_vector(env.observation_space):
        space = env.observation_space
        env = gym.wrappers.FlattenObservation(env)
        env.state_dict = space  # for obs_keys: the Dict the state beside the frames flattens
    env = _SquareFrames(env, env_id, pixels.size)
    try:
        # resets and renders once: a machine that cannot render fails here, not in training
        env = gym.wrappers.AddRenderObservation(
            env, render_only=not pixels.state, render_key=PIXELS, obs_key=STATE
        )
    except BaseException:
        env.close()
        raise
    size, k = pixels.size, pixels.frame_stack
    frame_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
    if not pixels.state:
        env = gym.wrappers.TransformObservation(env, _channels_first, frame_space)
        # "reset" padding: the first observation of an episode repeats its first frame
        env = gym.wrappers.FrameStackObservation(env, k, padding_type="reset")
        return gym.wrappers.ReshapeObservation(env, (3 * k, size, size))
    state = env.observation_space[STATE]
    state_space = gym.spaces.Box(-np.inf, np.inf, state.shape, np.float32)
    env = gym.wrappers.TransformObservation(
        env,
        lambda o: {PIXELS: _channels_first(o[PIXELS]), STATE: o[STATE].astype(np.float32)},
        gym.spaces.Dict({PIXELS: frame_space, STATE: state_space}),
    )
    # Stacks both, then keeps the newest state only: the state is Markov, the frames are not.
    env = gym.wrappers.FrameStackObservation(env, k, padding_type="reset")
    return gym.wrappers.TransformObservation(
        env,
        lambda o: {PIXELS: o[PIXELS].reshape(3 * k, size, size), STATE: o[STATE][-1]},
        gym.spaces.Dict(
            {PIXELS: gym.spaces.Box(0, 255, (3 * k, size, size), np.uint8), STATE: state_space}
        ),
    )


def _is_vector(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def _camera_count(env: gym.Env) -> int | None:
    """The fixed cameras of a Gymnasium MuJoCo or DMC env's model; None for other envs."""
    base = env.unwrapped
    physics = getattr(getattr(base, "_env", None), "physics", None)  # Shimmy's dm_control env
    model = getattr(base if physics is None else physics, "model", None)
    return int(model.ncam) if hasattr(model, "ncam") else None


def _channels_first(frame: np.ndarray) -> np.ndarray:
    return frame.transpose(2, 0, 1)


class _SquareFrames(gym.Wrapper):
    """Checks each rendered frame and resizes it to size x size where the env renders at a
    size of its own (Pendulum-v1's 500 x 500); a failed render is one SACError line."""

    def __init__(self, env: gym.Env, env_id: str, size: int) -> None:
        super().__init__(env)
        self.env_id, self.size = env_id, size

    def render(self) -> np.ndarray:  # type: ignore[override]
        try:
            frame = self.env.render()
        except Exception as e:  # MuJoCo's, EGL's, GLFW's, OSMesa's errors have no common type
            detail = " ".join(str(e).split())[:200]
            raise SACError(
                f"env '{self.env_id}' failed to render a frame for env.pixels "
                f"({type(e).__name__}: {detail}); {RENDER_FIX}"
            ) from None
        if not (
            isinstance(frame, np.ndarray)
            and frame.dtype == np.uint8
            and frame.ndim == 3
            and frame.shape[2] == 3
        ):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else frame
            raise SACError(
                f"env '{self.env_id}' rendered {got}, not an RGB frame (uint8, height x width x "
                f"3), for env.pixels; {RENDER_FIX}"
            )
        if frame.shape[:2] != (self.size, self.size):
            frame = resize_frame(frame, self.size)
        return frame


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """An (H, W, C) uint8 frame resized to (size, size, C) by area averaging (OpenCV's
    INTER_AREA, without OpenCV): each output pixel is the mean of the input area it covers."""
    rows = _area_weights(frame.shape[0], size)  # (size, H)
    cols = _area_weights(frame.shape[1], size)  # (size, W)
    out = np.einsum("ih,hwc,jw->ijc", rows, frame.astype(np.float32), cols, optimize=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: row i is the share of each input pixel in output pixel i's span
    [i, i + 1) * n_in / n_out, normalised to sum to 1."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    start = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], start + 1) - np.maximum(edges[:-1, None], start)
    weights = np.clip(overlap, 0, None).astype(np.float32)
    return weights / weights.sum(axis=1, keepdims=True)


def action_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """The env's own action bounds (float32): what make_env's RescaleAction maps [-1, 1] onto."""
    if not isinstance(env, gym.wrappers.RescaleAction):  # make_env's outermost wrapper
        raise TypeError(f"expected make_env's RescaleAction wrapper, got {type(env).__name__}")
    space = env.env.action_space
    return space.low.astype(np.float32), space.high.astype(np.float32)


def make_vector_env(
    env_id: str,
    kwargs: dict[str, Any] | None,
    num_envs: int,
    vectorization: str = "sync",
    action_repeat: int = 1,
    pixels: PixelSpec | None = None,
) -> gym.vector.VectorEnv:
    """`num_envs` copies of `make_env`, with autoreset disabled: EnvRunner resets them."""
    if num_envs < 1:
        raise SACError(f"env.num_envs must be >= 1, got {num_envs}")
    make_vec: Callable[..., gym.vector.VectorEnv]
    if vectorization == "sync":
        make_vec = gym.vector.SyncVectorEnv
    elif vectorization == "async":
        make_vec = gym.vector.AsyncVectorEnv
    else:
        raise SACError(f"env.vectorization must be 'sync' or 'async', got '{vectorization}'")
    # fail here, in this process, with a clear message
    make_env(env_id, kwargs, action_repeat=action_repeat, pixels=pixels).close()
    build = _make_worker_env if vectorization == "async" else make_env
    fns = [
        functools.partial(build, env_id, kwargs, action_repeat=action_repeat, pixels=pixels)
        for _ in range(num_envs)
    ]
    return make_vec(fns, autoreset_mode=AutoresetMode.DISABLED)


def _make_worker_env(
    env_id: str,
    kwargs: dict[str, Any] | None,
    action_repeat: int = 1,
    pixels: PixelSpec | None = None,
) -> gym.Env:
    """make_env inside an AsyncVectorEnv worker process. Ctrl-C and SIGTERM reach the whole
    process group (SLURM's SIGUSR2 every process of the job step); the workers ignore them so
    that the trainer can finish its step, checkpoint and close the envs itself. A forked worker
    would otherwise also run the parent's Python handlers (submitit's would requeue the job).
    AsyncVectorEnv also calls it once in the trainer's own process, for the spaces: there the
    signals stay as they are (an ignored SIGUSR2 would be inherited by the run)."""
    if multiprocessing.parent_process() is not None:  # a worker, not the trainer's process
        for sig in ("SIGINT", "SIGTERM", "SIGUSR2"):
            if hasattr(signal, sig):  # no SIGUSR2 on Windows
                signal.signal(getattr(signal, sig), signal.SIG_IGN)
    return make_env(env_id, kwargs, action_repeat=action_repeat, pixels=pixels)


def space_dims(env: gym.Env | gym.vector.VectorEnv) -> tuple[int, int]:
    """(obs_dim, act_dim) of a single env or of one member of a vector env; obs_dim is the
    size of the observation flattened (3k * size * size for pixels)."""
    act_space = getattr(env, "single_action_space", env.action_space)
    return int(np.prod(obs_shape(env))), int(np.prod(act_space.shape))


def obs_shape(env: gym.Env | gym.vector.VectorEnv) -> tuple[int, ...]:
    """The shape of one observation of a single env or of one member of a vector env:
    (obs_dim,) for a state, (3 * frame_stack, size, size) for pixels (beside the state too)."""
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    if isinstance(obs_space, gym.spaces.Dict):
        obs_space = obs_space[PIXELS]
    return tuple(int(n) for n in obs_space.shape)


def state_dim(env: gym.Env | gym.vector.VectorEnv) -> int:
    """The size of the state observed beside the frames (PixelSpec.state), else 0."""
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    return int(obs_space[STATE].shape[0]) if isinstance(obs_space, gym.spaces.Dict) else 0


ObsKeys = list[tuple[str, tuple[int, ...]]]  # a Dict observation's keys and their shapes


def _marked_dict(env: gym.Env, mark: str) -> gym.spaces.Dict | None:
    """The Dict space a wrapper of `env` marked with the attribute `mark`: "image_dict", the
    env's own Dict holding an image (observed as {PIXELS, STATE}); "state_dict", the Dict the
    state beside rendered frames flattens (env.pixels_state)."""
    inner = env
    while isinstance(inner, gym.Wrapper):
        if hasattr(inner, mark):
            return getattr(inner, mark)
        inner = inner.env
    return None


def _frames_beside_dict(env: gym.Env) -> gym.spaces.Dict | None:
    """A pixels_state env's observation {PIXELS: the frames, STATE: a flattened Dict} as the one
    Dict {PIXELS: the frames, the Dict's own keys...}; None for other envs, and where the Dict
    has a key PIXELS of its own."""
    state = _marked_dict(env, "state_dict")
    if state is None or PIXELS in state.spaces:
        return None
    return gym.spaces.Dict({PIXELS: env.observation_space[PIXELS], **state.spaces})


def _flattened_dict(env: gym.Env) -> gym.spaces.Dict | None:
    """The Dict observation space that make_env's FlattenObservation flattens into the flat
    observation, or None (also where the flat vector is only the state beside frames)."""
    if not _is_vector(env.observation_space):
        return None
    inner = env
    while not isinstance(inner, gym.wrappers.FlattenObservation):
        if not isinstance(inner, gym.Wrapper):
            return None  # a flat observation from the start
        inner = inner.env
    space = inner.env.observation_space
    return space if isinstance(space, gym.spaces.Dict) else None


def obs_keys(env: gym.Env) -> ObsKeys | None:
    """A `make_env` env's Dict observation: each key and the shape of its Box, in the Dict's
    key order, as the flat vector holds them (FlattenObservation's order: the vector is their
    values flattened and concatenated) or, for a Dict holding an image, as the observation
    {PIXELS: the image, STATE: the others flattened and concatenated} does; for frames beside
    a Dict state (env.pixels_state), PIXELS then the state's keys. None where the env's
    observation is no Dict of Boxes."""
    space = _flattened_dict(env) or _marked_dict(env, "image_dict") or _frames_beside_dict(env)
    if space is None or not all(isinstance(s, gym.spaces.Box) for s in space.values()):
        return None
    return [(key, tuple(int(n) for n in sub.shape)) for key, sub in space.items()]


@dataclass(frozen=True)
class GoalSpec:
    """Where a goal-conditioned env's goals lie in its flat observation (FlattenObservation of
    its Dict, in the Dict's key order) and its reward of (achieved, desired) goal batches."""

    achieved: slice
    desired: slice
    compute_reward: Callable[[np.ndarray, np.ndarray], np.ndarray]


def goal_spec(env: gym.Env) -> GoalSpec | None:
    """The goal API of a `make_env` env, or None if it has none: a Dict observation with
    `observation`, `achieved_goal` and `desired_goal` and a `compute_reward` of the env."""
    space = _flattened_dict(env)
    compute = getattr(env.unwrapped, "compute_reward", None)
    if not (space is not None and set(GOAL_KEYS) <= set(space) and callable(compute)):
        return None
    # FlattenObservation concatenates the Dict's entries in its key order, each flattened.
    slices, offset = {}, 0
    for key, sub in space.items():
        size = gym.spaces.flatdim(sub)
        slices[key] = slice(offset, offset + size)
        offset += size

    def reward(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        # Vectorised over the batch; the goal API passes one info per row, which the Fetch
        # tasks ignore and HER does not store.
        infos = [{} for _ in range(len(achieved))]
        return np.asarray(compute(achieved, desired, infos), dtype=np.float32).reshape(-1)

    return GoalSpec(slices["achieved_goal"], slices["desired_goal"], reward)


# A vector env's observations: an array, or for frames beside the state {PIXELS:, STATE:}
Observation = np.ndarray | dict[str, np.ndarray]


@dataclass
class Transitions:
    """One vector step's transitions, one row per env, ready for the replay buffer."""

    obs: Observation
    action: np.ndarray
    reward: np.ndarray
    next_obs: Observation  # the true next observation, also where the episode just ended
    terminated: np.ndarray
    truncated: np.ndarray
    episode_returns: list[float] = field(default_factory=list)  # episodes finished this step
    episode_lengths: list[int] = field(default_factory=list)
    # their info["is_success"] at the last step (goal-conditioned envs), None where not given
    episode_successes: list[float | None] = field(default_factory=list)


class EnvRunner:
    """Steps a vector env (autoreset DISABLED) and returns transitions that are safe to store.

    The runner resets each env itself when its episode ends, so a stored transition never spans
    a reset (next_obs is the episode's real last observation, from which a truncated episode
    bootstraps), and every episode starts from a seed of its own: episode k of env i from
    `sac.seeding.env_seed(seed, i, k)`. `episodes` gives each env's episode to start with (a
    resume passes the checkpoint's, so an episode cut by the stop restarts from its own seed).
    """

    def __init__(
        self, envs: gym.vector.VectorEnv, seed: int, episodes: list[int] | None = None
    ) -> None:
        self.envs = envs
        self.num_envs = envs.num_envs
        self.seed = seed
        # each env's episode in progress (its index counts that env's episodes from 0)
        self.episodes = np.array(episodes if episodes is not None else [0] * self.num_envs)
        if self.episodes.shape != (self.num_envs,):
            raise SACError(
                f"{len(self.episodes)} saved episode counts for {self.num_envs} envs; resume "
                "with the env.num_envs the run was started with"
            )
        # uint8 frames stay uint8 (a quarter of float32's memory; the buffer stores them so),
        # any other observation becomes float32; frames beside the state: a dict of the two
        space = envs.single_observation_space
        spaces = space.spaces if isinstance(space, gym.spaces.Dict) else {None: space}
        self._dtypes = {
            key: np.dtype(np.uint8 if sub.dtype == np.uint8 else np.float32)
            for key, sub in spaces.items()
        }
        seeds = [env_seed(seed, i, int(k)) for i, k in enumerate(self.episodes)]
        obs, _ = envs.reset(seed=seeds)
        self.obs = self._cast(obs)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def step(self, action: np.ndarray) -> Transitions:
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        out = Transitions(
            self.obs,
            action,
            np.asarray(reward, dtype=np.float32),
            self._cast(next_obs),
            np.asarray(terminated),
            np.asarray(truncated),
        )
        self._returns += reward
        self._lengths += 1
        done = np.logical_or(terminated, truncated)
        if done.any():
            out.episode_returns = [float(r) for r in self._returns[done]]
            out.episode_lengths = [int(n) for n in self._lengths[done]]
            out.episode_successes = [_success(info, i) for i in np.flatnonzero(done)]
            self._returns[done] = 0.0
            self._lengths[done] = 0
            self.episodes[done] += 1
            seeds = [
                env_seed(self.seed, i, int(k)) if d else None
                for i, (k, d) in enumerate(zip(self.episodes, done))
            ]
            next_obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": done})
        self.obs = self._cast(next_obs)
        return out

    def _cast(self, obs: Any) -> Observation:
        """A vector env's observations in the dtypes the buffer stores."""
        if None in self._dtypes:
            return np.asarray(obs, dtype=self._dtypes[None])
        return {key: np.asarray(obs[key], dtype=dtype) for key, dtype in self._dtypes.items()}

    def close(self) -> None:
        self.envs.close()


def _success(info: dict[str, Any], i: int) -> float | None:
    """Env i's info["is_success"] in a vector env's info dict (its `_is_success` mask says
    which envs gave one), or None."""
    if "is_success" not in info or not info.get("_is_success", np.ones(i + 1, bool))[i]:
        return None
    return float(info["is_success"][i])
