"""A trained policy outside the trainer: `load_policy(path)` gives a `Policy` that maps raw
observations to env actions, and `DeployedPolicy` is the same deterministic map as a module
for sac-export.

The agent acts in [-1, 1]; the training env maps that linearly onto its bounds (gymnasium's
RescaleAction, see sac/envs.py). `to_env_action` is that map, written once for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from sac.errors import SACError
from sac.losses import PIXELS, STATE, Obs
from sac.networks import encode

if TYPE_CHECKING:
    from sac.agent import SAC


def to_env_action(action: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Policy actions in [-1, 1] -> env actions in [low, high] (RescaleAction's linear map)."""
    return low + (action + 1.0) * ((high - low) / 2)


class DeployedPolicy(nn.Module):
    """The deterministic actor as a standalone module: raw observations (batch, *obs_shape),
    float32 vectors or uint8 images, -> env actions (batch, act_dim) in [low, high], with no
    Gymnasium wrapper around it. As in SAC.act, observations go through `obs_norm`'s frozen
    statistics (the agent's normaliser) first, images through `encoder` (the critics'
    convolutional encoder, the actor's input)."""

    def __init__(
        self,
        actor: nn.Module,
        low: np.ndarray,
        high: np.ndarray,
        obs_norm: nn.Module | None = None,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.obs_norm = obs_norm if obs_norm is not None else nn.Identity()
        self.encoder = encoder if encoder is not None else nn.Identity()
        self.actor = actor
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.eval().requires_grad_(False)

    def forward(self, obs: Obs) -> Tensor:
        features = encode(self.encoder, self.obs_norm(obs))
        return to_env_action(self.actor.deterministic(features), self.low, self.high)

    @classmethod
    def of(cls, agent: SAC, low: np.ndarray, high: np.ndarray) -> DeployedPolicy:
        """The deterministic policy of `agent` (shares its modules)."""
        return cls(agent.actor, low, high, agent.obs_norm, agent.encoder)


ObsKeys = list[tuple[str, tuple[int, ...]]]


class KeyedPolicy(nn.Module):
    """A DeployedPolicy of an env with a Dict observation, taking one input per key, each
    (batch, *shape), in the Dict's key order: flattened and concatenated, they are the flat
    vector the agent was trained on."""

    def __init__(self, policy: DeployedPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.policy(torch.cat([x.reshape(x.shape[0], -1) for x in inputs], dim=1))


def image_index(keys: ObsKeys, image_shape: tuple[int, ...]) -> int:
    """Which key of an env's Dict holding an image (sac.envs) is the image: the 3-d one of the
    agent's image shape, channels first or last."""
    c, h, w = image_shape
    return next(i for i, (_, s) in enumerate(keys) if tuple(s) in ((c, h, w), (h, w, c)))


def from_env_dict(values: list[Tensor], keys: ObsKeys, image_shape: tuple[int, ...]) -> Obs:
    """A batch of an env's own Dict observation holding an image (`values` in `keys`' order,
    each (batch, *shape)) as make_env observes it: the image channels-first, beside the other
    entries flattened and concatenated in key order as the state (sac.envs)."""
    i = image_index(keys, image_shape)
    pixels = values[i]
    if tuple(keys[i][1]) != tuple(image_shape):  # channels last
        pixels = pixels.permute(0, 3, 1, 2)
    others = [v.reshape(v.shape[0], -1).to(torch.float32) for j, v in enumerate(values) if j != i]
    if not others:
        return pixels.contiguous()
    return {PIXELS: pixels.contiguous(), STATE: torch.cat(others, dim=1)}


class ImageDictPolicy(nn.Module):
    """A DeployedPolicy of an env whose Dict observation holds an image, taking one input per
    key, each (batch, *shape), in the Dict's key order (`from_env_dict`)."""

    def __init__(self, policy: DeployedPolicy, keys: ObsKeys, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.policy, self.keys, self.image_shape = policy, keys, tuple(image_shape)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.policy(from_env_dict(list(inputs), self.keys, self.image_shape))


class PixelStatePolicy(nn.Module):
    """A DeployedPolicy of frames beside the state (env.pixels_state), taking the two as
    inputs: uint8 frames (batch, 3k, H, W) and float32 states (batch, state_dim)."""

    def __init__(self, policy: DeployedPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, pixels: Tensor, state: Tensor) -> Tensor:
        return self.policy({PIXELS: pixels, STATE: state})


class Policy:
    """A trained agent's actor: `policy(obs)` maps a raw observation of the env's shape, or a
    batch of them, to env actions (act_dim,) or (batch, act_dim) as float32 numpy arrays.
    Vector observations are taken as float32, images (channels, height, width) as uint8; an
    env's Dict observation as the dict itself (`obs_keys`: its keys and shapes, in the order
    the flat vector holds them) or as that flat vector; frames beside the state
    (env.pixels_state) as make_env gives them, a dict {"pixels": uint8 frames, "state": the
    state vector}, or, where the state is a Dict, the frames beside its own keys; an env's own
    Dict holding an image as that dict or as make_env's."""

    def __init__(
        self, agent: SAC, low: np.ndarray, high: np.ndarray, obs_keys: ObsKeys | None = None
    ) -> None:
        self.agent = agent
        self.obs_keys = obs_keys
        self.device = agent.device
        self.obs_shape, self.act_dim = agent.obs_shape, agent.act_dim
        self.low = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=self.device)

    @property
    def action_low(self) -> np.ndarray:
        return self.low.cpu().numpy()

    @property
    def action_high(self) -> np.ndarray:
        return self.high.cpu().numpy()

    def __call__(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env actions for `obs`; `deterministic=False` samples from the policy (torch's RNG)."""
        keys = {k for k, _ in self.obs_keys or []}
        if self.agent.pixels and isinstance(obs, Mapping) and keys and set(obs) == keys:
            return self._act(*self._image_dict(obs), deterministic)
        if self.agent.state_dim:
            return self._act(*self._pixels_and_state(obs), deterministic)
        array = self._flattened(obs) if isinstance(obs, Mapping) else np.asarray(obs)
        shape = self.obs_shape
        if self.agent.pixels and array.dtype != np.uint8:
            # floats could be in [0, 1] or [0, 255]: guessing would act on the wrong images
            raise SACError(
                f"image observations of dtype {array.dtype}; this policy takes uint8 images "
                "(the env's own observations)"
            )
        obs_t = torch.as_tensor(array if self.agent.pixels else array.astype(np.float32))
        obs_t = obs_t.to(self.device)
        single = obs_t.ndim == len(shape)
        batched = obs_t.ndim == len(shape) + 1
        if tuple(obs_t.shape[-len(shape) :]) != shape or not (single or batched):
            dims = ", ".join(map(str, shape))
            raise SACError(
                f"observations of shape {tuple(obs_t.shape)}; this policy takes ({dims},) or "
                f"(batch, {dims})"
            )
        action = self.agent.act(obs_t.unsqueeze(0) if single else obs_t, deterministic)
        env_action = to_env_action(action, self.low, self.high).cpu().numpy()
        return env_action[0] if single else env_action

    def _act(self, obs: Obs, single: bool, deterministic: bool) -> np.ndarray:
        action = self.agent.act(obs, deterministic)
        env_action = to_env_action(action, self.low, self.high).cpu().numpy()
        return env_action[0] if single else env_action

    def _image_dict(self, obs: Mapping[str, Any]) -> tuple[Obs, bool]:
        """An env's own Dict observation holding an image, one or a batch, as the agent's
        batch; and whether it was one."""
        assert self.obs_keys is not None
        shapes = [s for _, s in self.obs_keys]
        i = image_index(self.obs_keys, self.obs_shape)
        values = [np.asarray(obs[k]) for k, _ in self.obs_keys]
        if values[i].dtype != np.uint8:
            raise SACError(
                f"image observations of dtype {values[i].dtype}; this policy takes uint8 "
                f"images at '{self.obs_keys[i][0]}' (the env's own observations)"
            )
        single = all(v.shape == s for v, s in zip(values, shapes))
        sizes = {len(v) for v in values if v.ndim > 0}
        batched = len(sizes) == 1 and all(v.shape[1:] == s for v, s in zip(values, shapes))
        if not (single or batched):
            want = ", ".join(f"{k}: {s}" for k, s in self.obs_keys)
            got = ", ".join(f"{k}: {v.shape}" for (k, _), v in zip(self.obs_keys, values))
            raise SACError(
                f"observation of shapes {{{got}}}; this policy takes {{{want}}}, or each with "
                "a leading batch axis of one size"
            )
        tensors = [
            torch.as_tensor(v if j == i else v.astype(np.float32)) for j, v in enumerate(values)
        ]
        tensors = [(t[None] if single else t).to(self.device) for t in tensors]
        return from_env_dict(tensors, self.obs_keys, self.obs_shape), single

    def _pixels_and_state(self, obs: Any) -> tuple[dict[str, Tensor], bool]:
        """Frames beside the state, one or a batch, as the agent's batch; and whether it was
        one."""
        shapes = {PIXELS: self.obs_shape, STATE: (self.agent.state_dim,)}
        want = f"{{pixels: uint8 {shapes[PIXELS]}, state: {shapes[STATE]}}}"
        if self.obs_keys:  # the state is a Dict (sac.envs.obs_keys): its own keys do too
            want += f" (or {{{', '.join(f'{k}: {s}' for k, s in self.obs_keys)}}})"
        if not isinstance(obs, Mapping) or set(obs) != set(shapes):
            got = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
            raise SACError(
                f"observation {got}; this policy takes frames beside the state, a dict {want}, "
                "or each with a leading batch axis of one size"
            )
        pixels, state = np.asarray(obs[PIXELS]), np.asarray(obs[STATE], dtype=np.float32)
        if pixels.dtype != np.uint8:
            raise SACError(
                f"image observations of dtype {pixels.dtype}; this policy takes uint8 images "
                "(the env's own observations)"
            )
        single = pixels.shape == shapes[PIXELS] and state.shape == shapes[STATE]
        batched = (
            pixels.ndim > 0
            and pixels.shape[1:] == shapes[PIXELS]
            and state.shape == (len(pixels), *shapes[STATE])
        )
        if not (single or batched):
            raise SACError(
                f"observation of shapes {{pixels: {pixels.shape}, state: {state.shape}}}; this "
                f"policy takes {want}, or each with a leading batch axis of one size"
            )
        frames = {PIXELS: torch.as_tensor(pixels), STATE: torch.as_tensor(state)}
        return {k: (v[None] if single else v).to(self.device) for k, v in frames.items()}, single

    def _flattened(self, obs: Mapping[str, Any]) -> np.ndarray:
        """A Dict observation (one, or a batch: each value with a leading batch axis) as the
        flat float32 vector(s) the agent was trained on."""
        if self.obs_keys is None:
            raise SACError(
                "this policy's env gives no Dict observation: pass its observation array"
            )
        names = [key for key, _ in self.obs_keys]
        if set(obs) != set(names):
            raise SACError(
                f"observation keys {sorted(obs)}; this policy takes the keys {sorted(names)}"
            )
        values = [np.asarray(obs[key], dtype=np.float32) for key in names]
        single = all(v.shape == shape for v, (_, shape) in zip(values, self.obs_keys))
        batch = {v.shape[0] for v in values if v.ndim > 0}
        batched = len(batch) == 1 and all(
            v.shape[1:] == shape for v, (_, shape) in zip(values, self.obs_keys)
        )
        if not (single or batched):
            want = ", ".join(f"{key}: {shape}" for key, shape in self.obs_keys)
            got = ", ".join(f"{key}: {v.shape}" for key, v in zip(names, values))
            raise SACError(
                f"observation of shapes {{{got}}}; this policy takes {{{want}}}, or each with "
                "a leading batch axis of one size"
            )
        if single:
            return np.concatenate([v.reshape(-1) for v in values])
        return np.concatenate([v.reshape(len(v), -1) for v in values], axis=1)


def actor_for_env(
    state: dict[str, Any], env: Any, train_cfg: Any, device: torch.device, path: Path
) -> SAC:
    """The actor of a loaded checkpoint `state` (and for images the critics' encoder) for
    `env`, a make_env env rebuilt from its stored config `train_cfg`: refused in one line if
    the env's spaces are not the checkpoint's (sac-eval and sac-export)."""
    from sac.agent import SAC
    from sac.checkpoint import check_spaces, restoring_from
    from sac.config import agent_config
    from sac.envs import obs_shape, state_dim

    shape, act_dim = obs_shape(env), int(np.prod(env.action_space.shape))
    check_spaces(state, shape, act_dim, train_cfg.env.id, state_dim(env))
    with restoring_from(path):
        return SAC.from_state(
            shape,
            act_dim,
            agent_config(train_cfg),
            state["agent"],
            device,
            actor_only=True,
            state_dim=state_dim(env),
        )


def load_policy(path: str | Path, device: str = "cpu", env_id: str | None = None) -> Policy:
    """The policy of a checkpoint file, or of a run directory's latest checkpoint, on `device`
    (auto | cpu | cuda | cuda:N). Only the actor is loaded.

    `env_id`: a checkpoint whose env.id names a module to import (`module:Env-v0`) loads only
    when that id is passed here again. Checkpoints from before the action bounds were stored
    read them from the env, this one if given."""
    from sac.agent import SAC
    from sac.checkpoint import (
        load_checkpoint,
        resolve_checkpoint,
        restoring_from,
        saved_obs_keys,
        saved_obs_shape,
        saved_state_dim,
    )
    from sac.config import agent_config, stored_train_config
    from sac.runtime import resolve_device

    torch_device = resolve_device(device)
    path = resolve_checkpoint(path)
    state = load_checkpoint(path, with_buffer=False)
    spaces = state["spaces"]
    train_cfg = stored_train_config(
        state["config"], env_id, confirm="load_policy(..., env_id='{}')", path=path
    )
    if "action_low" in spaces and "action_high" in spaces:
        low = np.asarray(spaces["action_low"], dtype=np.float32)
        high = np.asarray(spaces["action_high"], dtype=np.float32)
    else:  # checkpoints written before the bounds were stored: ask the env, as sac-eval does
        low, high = _env_action_bounds(train_cfg, spaces)
    with restoring_from(path):
        agent = SAC.from_state(
            saved_obs_shape(spaces),
            spaces["act_dim"],
            agent_config(train_cfg),
            state["agent"],
            torch_device,
            actor_only=True,
            state_dim=saved_state_dim(spaces),
        )
    return Policy(agent, low, high, saved_obs_keys(spaces))


def _env_action_bounds(train_cfg: Any, spaces: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The action bounds of the env a checkpoint was trained on, from its stored config."""
    from sac.checkpoint import check_spaces
    from sac.envs import action_bounds, make_env, obs_shape, pixel_spec, state_dim

    env = make_env(train_cfg.env.id, train_cfg.env.kwargs, pixels=pixel_spec(train_cfg.env))
    try:
        act_dim = int(np.prod(env.action_space.shape))
        check_spaces({"spaces": spaces}, obs_shape(env), act_dim, train_cfg.env.id, state_dim(env))
        return action_bounds(env)
    finally:
        env.close()
