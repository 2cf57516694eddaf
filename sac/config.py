"""Config schemas. Plain dataclasses, registered in Hydra's ConfigStore by `register_configs`.

The schemas make Hydra reject an unknown key or a value of the wrong type at start-up, and their
`__post_init__` checks the values types cannot rule out, with one line that names the key and
what would work (`sac.errors.SACError`). The checks run wherever a dataclass is built: from
Python (`AgentConfig(gamma=2.0)` raises) and from a composed Hydra config through
`OmegaConf.to_object` (see `validated`). This module imports nothing from Hydra at module level
so the agent can use `AgentConfig` freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from sac.errors import SACError

MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's
VECTORIZATIONS = ("sync", "async")
# env.image_size bounds: DrQ's encoder (a stride-2 then three 3x3 convolutions) needs >= 15
# pixels a side; the upper bound catches a typo before a buffer of huge frames is allocated.
IMAGE_SIZE_MIN, IMAGE_SIZE_MAX = 16, 512
HER_STRATEGIES = ("future", "final", "episode")  # sac.her.HerReplayBuffer's goal choices


def _require(checks: list[tuple[bool, str]]) -> None:
    """Raise the first failed check's message as a SACError."""
    for ok, message in checks:
        if not ok:
            raise SACError(message)


@dataclass
class EnvConfig:
    """Which Gymnasium environment to train on and how to vectorise it."""

    id: str = "Pendulum-v1"  # any Gymnasium id with a continuous Box action space
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    num_envs: int = 1  # parallel training envs (Gymnasium vector API)
    vectorization: str = "sync"  # sync | async (async: one subprocess per env)
    # each action held for this many env steps (frames), rewards summed; every step count of
    # the run (total_steps, warm-up, evaluations, ...) counts frames, as the DMC literature does
    action_repeat: int = 1
    # Pixels (DrQ-style SAC): observe the env's rendered RGB frames instead of its state
    pixels: bool = False
    image_size: int = 84  # frames are image_size x image_size (rendered so, or resized)
    frame_stack: int = 3  # the observation stacks the last k frames: (3k, size, size) uint8
    # with env.pixels: observe the env's state vector beside the frames, a dict observation
    # {"pixels": the frame stack, "state": the flat state at the newest frame}
    pixels_state: bool = False
    # MuJoCo and DMC envs only; None: the env's default (dm_control's -1, the free camera;
    # DrQ and the pixel presets use 0)
    camera_id: int | None = None

    def __post_init__(self) -> None:
        _require(
            [
                (self.num_envs >= 1, "env.num_envs must be >= 1"),
                (self.action_repeat >= 1, "env.action_repeat must be >= 1"),
                (
                    IMAGE_SIZE_MIN <= self.image_size <= IMAGE_SIZE_MAX,
                    f"env.image_size must be in [{IMAGE_SIZE_MIN}, {IMAGE_SIZE_MAX}], "
                    f"got {self.image_size} (84 is DrQ's)",
                ),
                (self.frame_stack >= 1, f"env.frame_stack must be >= 1, got {self.frame_stack}"),
                (
                    self.pixels or not self.pixels_state,
                    "env.pixels_state=true observes the state beside rendered frames; set "
                    "env.pixels=true too (or env.pixels_state=false for the state alone)",
                ),
                (
                    self.camera_id is None or self.camera_id >= -1,
                    f"env.camera_id must be null, -1 (the free camera) or a camera index >= 0, "
                    f"got {self.camera_id}",
                ),
                (
                    self.vectorization in VECTORIZATIONS,
                    f"env.vectorization must be 'sync' or 'async', got '{self.vectorization}'",
                ),
            ]
        )


@dataclass
class AgentConfig:
    """SAC hyperparameters (defaults: Haarnoja et al. 2018, "SAC Algorithms and Applications")."""

    name: str = "sac"  # label of the variant in run summaries and result tables
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    num_critics: int = 2
    gamma: float = 0.99
    tau: float = 0.005  # Polyak coefficient for the target critics
    target_update_interval: int = 1  # gradient updates between Polyak updates
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    autotune_alpha: bool = True  # learn the temperature; if false, `alpha` stays fixed
    alpha: float = 1.0  # initial temperature when autotuned, the fixed one otherwise
    target_entropy: float | None = None  # None: -dim(A)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    batch_size: int = 256
    buffer_size: int = 1_000_000
    warmup_steps: int = 5_000  # env steps of uniform random actions before learning starts
    updates_per_step: float = 1.0  # gradient updates per collected transition (UTD ratio)
    # Beyond vanilla SAC (conf/agent/ has presets that combine these; see the README):
    critic_hidden_sizes: list[int] | None = None  # None: hidden_sizes
    critic_norm: str = "none"  # none | layer (LayerNorm) | batch (batch renorm, CrossQ)
    critic_dropout: float = 0.0  # dropout in the critics' hidden layers (DroQ)
    actor_batch_norm: bool = False  # batch renorm in the actor (CrossQ)
    target_networks: bool = True  # False: Q(s', a') from the live critics, joint pass (CrossQ)
    target_subset: int | None = None  # REDQ: min over a random subset of this many critics
    actor_q: str = "min"  # how the actor loss combines the critics: min | mean (REDQ)
    actor_update_interval: int = 1  # critic updates per actor and temperature update
    adam_beta1: float = 0.9  # Adam's first-moment decay for the actor and critics (the
    # temperature's Adam keeps 0.9, as in CrossQ's reference code)
    # gSDE exploration (Raffin et al. 2022, SB3's use_sde): noise that is a function of the
    # state, redrawn at each episode's start (-1) or every gsde_sample_freq env steps
    gsde: bool = False
    gsde_sample_freq: int = -1
    gsde_log_std_init: float = -3.0  # SB3's default for SAC
    # Running observation normalisation (as Stable-Baselines3's VecNormalize): every network
    # input is (obs - mean) / std over all observations collected so far, clipped to
    # [-obs_norm_clip, obs_norm_clip] (null: not clipped). Off by default, as in the paper;
    # 10 is VecNormalize's clip_obs.
    obs_norm: bool = False
    obs_norm_clip: float | None = 10.0
    # SimbaV2 (Lee et al. 2025; agent=simbav2 sets these together, see conf/agent/simbav2.yaml)
    # simbav2: hyperspherical residual networks for actor and critics; hidden_sizes and
    # critic_hidden_sizes then give one entry per residual block, all of one width
    network: str = "mlp"  # mlp | simbav2
    critic_bins: int = 0  # > 0: categorical critics over this many atoms (network=simbav2)
    critic_v_max: float = 5.0  # the atoms span [-critic_v_max, critic_v_max]
    reward_norm: bool = False  # divide rewards by the running scale of the discounted return,
    reward_norm_g_max: float = 5.0  # at least max|G| / reward_norm_g_max (SimbaV2's G_max)
    lr_end: float | None = None  # None: constant learning rates; else all three decay linearly
    lr_decay_steps: int = 0  # to lr_end over the updates of this many env steps
    target_entropy_per_dim: float = -1.0  # target_entropy null: this times dim(A)
    # Image observations (env.pixels=true; agent=drq): a convolutional encoder shared by the
    # critics (DrQ, Kostrikov et al. 2021), its features detached for the actor
    encoder_features: int = 50  # the encoder's output size (DrQ's feature_dim)
    encoder_filters: int = 32  # channels of each 3x3 convolution
    encoder_layers: int = 4  # convolutions: the first of stride 2, the rest of stride 1
    augment_pad: int = 4  # DrQ's random shift of sampled images by up to this many pixels; 0: off

    def __post_init__(self) -> None:
        _require(
            [
                (self.batch_size > 0, "agent.batch_size must be > 0"),
                (
                    min(self.encoder_features, self.encoder_filters, self.encoder_layers) >= 1,
                    "agent.encoder_features, encoder_filters and encoder_layers must be >= 1",
                ),
                (self.augment_pad >= 0, "agent.augment_pad must be >= 0 (0: no augmentation)"),
                (self.buffer_size > 0, "agent.buffer_size must be > 0"),
                (self.warmup_steps >= 0, "agent.warmup_steps must be >= 0"),
                (self.updates_per_step >= 0, "agent.updates_per_step must be >= 0"),
                (self.num_critics >= 1, "agent.num_critics must be >= 1"),
                (
                    len(self.hidden_sizes) > 0 and min(self.hidden_sizes) > 0,
                    "agent.hidden_sizes must be a non-empty list of positive sizes",
                ),
                (0.0 <= self.gamma <= 1.0, "agent.gamma must be in [0, 1]"),
                (0.0 < self.tau <= 1.0, "agent.tau must be in (0, 1]"),
                (self.target_update_interval >= 1, "agent.target_update_interval must be >= 1"),
                (
                    min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0,
                    "agent.actor_lr, agent.critic_lr and agent.alpha_lr must be > 0",
                ),
                (self.alpha > 0, "agent.alpha must be > 0"),
                (
                    self.log_std_min < self.log_std_max,
                    "agent.log_std_min must be < agent.log_std_max",
                ),
                (
                    not self.critic_hidden_sizes or min(self.critic_hidden_sizes) > 0,
                    "agent.critic_hidden_sizes must be null or a non-empty list of positive sizes",
                ),
                (
                    self.critic_norm in ("none", "layer", "batch"),
                    f"agent.critic_norm must be none, layer or batch, got '{self.critic_norm}'",
                ),
                (0.0 <= self.critic_dropout < 1.0, "agent.critic_dropout must be in [0, 1)"),
                (
                    self.target_subset is None or 1 <= self.target_subset <= self.num_critics,
                    "agent.target_subset must be null or between 1 and agent.num_critics",
                ),
                (
                    self.actor_q in ("min", "mean"),
                    f"agent.actor_q must be min or mean, got '{self.actor_q}'",
                ),
                (self.actor_update_interval >= 1, "agent.actor_update_interval must be >= 1"),
                (0.0 <= self.adam_beta1 < 1.0, "agent.adam_beta1 must be in [0, 1)"),
                (
                    self.gsde_sample_freq == -1 or self.gsde_sample_freq >= 1,
                    "agent.gsde_sample_freq must be -1 (each episode) or >= 1 (env steps)",
                ),
                (
                    self.obs_norm_clip is None or self.obs_norm_clip > 0,
                    "agent.obs_norm_clip must be > 0, or null for no clipping",
                ),
                (
                    self.network in ("mlp", "simbav2"),
                    f"agent.network must be mlp or simbav2, got '{self.network}'",
                ),
                (
                    self.network == "mlp"
                    or all(
                        len(set(s)) == 1 for s in (self.hidden_sizes, self.critic_hidden_sizes) if s
                    ),
                    "agent.network=simbav2 needs one width per network: agent.hidden_sizes and "
                    "agent.critic_hidden_sizes list one equal size per residual block",
                ),
                (
                    self.network == "mlp"
                    or (
                        self.critic_norm == "none"
                        and self.critic_dropout == 0
                        and not self.actor_batch_norm
                        and not self.gsde
                    ),
                    "agent.network=simbav2 normalises its own features: it takes no "
                    "agent.critic_norm, critic_dropout, actor_batch_norm or gsde",
                ),
                (
                    self.critic_bins == 0 or self.critic_bins >= 2,
                    "agent.critic_bins must be 0 or >= 2",
                ),
                (
                    self.critic_bins == 0 or self.network == "simbav2",
                    "agent.critic_bins > 0 (a categorical critic) needs agent.network=simbav2",
                ),
                (
                    self.critic_bins == 0 or (self.target_networks and self.target_subset is None),
                    "agent.critic_bins > 0 needs agent.target_networks=true and no "
                    "agent.target_subset",
                ),
                (self.critic_v_max > 0, "agent.critic_v_max must be > 0"),
                (self.reward_norm_g_max > 0, "agent.reward_norm_g_max must be > 0"),
                (
                    self.lr_end is None or (self.lr_end > 0 and self.lr_decay_steps > 0),
                    "agent.lr_end needs agent.lr_end > 0 and agent.lr_decay_steps > 0 (or "
                    "agent.lr_end=null for constant learning rates)",
                ),
                (
                    # Target networks would normalise (s', a') with their own lagging batch
                    # statistics, which is what makes batch norm fail in SAC (Bhatt et al.
                    # 2024, section 3).
                    not (self.critic_norm == "batch" and self.target_networks),
                    "agent.critic_norm=batch needs agent.target_networks=false (CrossQ: one "
                    "joint forward pass instead of target critics); or use agent=crossq",
                ),
            ]
        )


@dataclass
class HERConfig:
    """Hindsight Experience Replay (Andrychowicz et al. 2017) for goal-conditioned envs (the
    Gymnasium-Robotics goal API): sampled transitions get goals their episode achieved."""

    enabled: bool = False
    # which achieved goal replaces the desired one: future (a later step of the episode),
    # final (its last step) or episode (any of its steps)
    strategy: str = "future"
    n_sampled_goal: int = 4  # relabelled goals per real one: n/(n+1) of each batch relabelled

    def __post_init__(self) -> None:
        _require(
            [
                (
                    self.strategy in HER_STRATEGIES,
                    f"her.strategy must be one of {', '.join(HER_STRATEGIES)}, "
                    f"got '{self.strategy}'",
                ),
                (
                    self.n_sampled_goal >= 0,
                    f"her.n_sampled_goal must be >= 0, got {self.n_sampled_goal}",
                ),
            ]
        )


@dataclass
class WandbConfig:
    """Weights & Biases logging; off by default so no account is needed."""

    enabled: bool = False
    project: str = "sac"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str | None = None  # online | offline | disabled; None: WANDB_MODE, else online


@dataclass
class TensorBoardConfig:
    """TensorBoard logging (on with logger=tensorboard)."""

    log_dir: str | None = None  # None: <run dir>/tensorboard


@dataclass
class TrainConfig:
    """Everything `sac-train` reads."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    her: HERConfig = field(default_factory=HERConfig)
    # Loggers besides the metrics CSV (always written): a name or a list of names among
    # tensorboard | wandb (sac.loggers.LOGGER_CHOICES); None: CSV only. `Any` because OmegaConf
    # has no "string or list of strings" type; sac.loggers.logger_names checks it.
    logger: Any = None
    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # 0: PyTorch's default
    # torch.compile the whole update as one graph (the two losses one by one with batch
    # norm); falls back to eager where it cannot compile
    compile: bool = False
    # CUDA only: compile's one graph with Inductor's CUDA graph trees, so an update is one
    # CUDA graph replay (with batch norm: each loss's forward and backward, mode
    # "reduce-overhead")
    cudagraphs: bool = False
    # Gradient updates run together in one call (SAC.update_many): with the one compiled
    # graph, K updates unrolled into one graph (K times its compile time). Updates then wait
    # until K are due (up to K - 1 fewer at the end of a run).
    updates_per_call: int = 1
    # float32 matmul precision (torch.set_float32_matmul_precision): highest keeps IEEE float32;
    # high allows TF32 on NVIDIA GPUs (Ampere and newer); medium also allows bfloat16 inner
    # products, which CPUs with AVX512-BF16/AMX can run faster (by how much depends on the CPU).
    matmul_precision: str = "highest"
    total_steps: int = 20_000  # environment steps (transitions, summed over envs)
    eval_every: int = 2_000  # env steps between deterministic evaluations (0: only at the end)
    eval_episodes: int = 10
    eval_video: bool = False  # record each evaluation's first episode to videos/eval_step<N>.mp4
    checkpoint_every: int = 10_000  # env steps between checkpoints (one is always saved at the end)
    keep_checkpoints: int = 3  # newest checkpoint files kept (0: keep all)
    save_buffer: bool = True  # store the replay buffer in checkpoints (needed for a true resume)
    log_every: int = 1_000  # env steps between training-metric rows and progress lines
    # auto: continue from the run directory's latest checkpoint if it has one (what a requeued
    # cluster job needs); never: start afresh (old outputs are moved aside); or a checkpoint /
    # run directory to continue from.
    resume: str = "auto"

    def __post_init__(self) -> None:
        from sac.loggers import logger_names

        _require(
            [
                (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
                (self.total_steps > 0, "total_steps must be > 0"),
                (self.eval_every >= 0, "eval_every must be >= 0 (0 evaluates only at the end)"),
                (self.eval_episodes > 0, "eval_episodes must be > 0"),
                (
                    self.checkpoint_every >= 0,
                    "checkpoint_every must be >= 0 (0 saves only at the end)",
                ),
                (self.log_every > 0, "log_every must be > 0"),
                (
                    self.matmul_precision in MATMUL_PRECISIONS,
                    f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
                    f"got '{self.matmul_precision}'",
                ),
                (self.keep_checkpoints >= 0, "keep_checkpoints must be >= 0 (0 keeps all)"),
                (self.updates_per_call >= 1, "updates_per_call must be >= 1"),
            ]
        )
        logger_names(self.logger, self.wandb.enabled)  # an unknown name: one line, the choices


@dataclass
class EvalConfig:
    """Everything `sac-eval` reads."""

    checkpoint: str = MISSING  # a checkpoint file, or a run directory (its latest checkpoint)
    episodes: int = 10
    deterministic: bool = True
    device: str = "auto"
    seed: int = 0
    video: bool = False  # write one MP4 per episode
    output_dir: str | None = None  # default: <run dir>/eval/<checkpoint name>
    # The env to evaluate on. None: the checkpoint's env.id, unless that names a module to
    # import (module:Env-v0), which runs only when passed here again. Another id evaluates the
    # policy on that env (its obs/act sizes must match the checkpoint's).
    env_id: str | None = None

    def __post_init__(self) -> None:
        _require(
            [
                (self.episodes >= 1, f"episodes must be >= 1, got {self.episodes}"),
                (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            ]
        )


@dataclass
class ExportConfig:
    """Everything `sac-export` reads."""

    checkpoint: str = MISSING  # a checkpoint file, or a run directory (its latest checkpoint)
    format: str = "all"  # onnx | pt2 | all
    device: str = "cpu"  # a .pt2 program keeps its weights on the device it was exported on
    output_dir: str | None = None  # default: <run dir>/export/<checkpoint name>
    # The env whose bounds and observations the export uses; None: the checkpoint's, as for
    # sac-eval (a module:Env-v0 id from a checkpoint is used only when passed here again)
    env_id: str | None = None


def validated(cfg: DictConfig, schema: type | None = None) -> Any:
    """The dataclass instance of a composed config (TrainConfig, EvalConfig, ...), built by
    OmegaConf so every `__post_init__` check runs; a bad value raises its one-line SACError.
    An untyped config (one read back from a checkpoint) is checked against `schema`
    (default TrainConfig)."""
    if OmegaConf.get_type(cfg) in (dict, None):
        cfg = OmegaConf.merge(OmegaConf.structured(schema or TrainConfig), cfg)
    return OmegaConf.to_object(cfg)


def stored_train_config(
    stored: Any,
    env_id: str | None = None,
    *,
    other_env: bool = True,
    confirm: str = "env_id={}",
    path: str | Path | None = None,
) -> DictConfig:
    """The train config a checkpoint holds (`state["config"]`), checked against TrainConfig and
    its value checks with nothing in it resolved; any problem is one SACError line.

    Gymnasium imports `module` to build an env id of the form `module:Env-v0`, and a checkpoint
    must not decide what code runs: such a stored env.id is refused unless `env_id`, the id the
    user named (command line, their own config, an argument), equals it; `confirm` says how to
    name it. With `other_env` (sac-eval, sac-export, load_policy) a different `env_id` replaces
    the stored one in the result, so the stored one is never built; without it (resume) the
    stored id stays and the caller refuses the change.
    """
    where = f"'{path}': " if path is not None else ""
    if not isinstance(stored, dict):
        raise SACError(f"{where}the checkpoint's config is not valid: not a dictionary")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), _literal(stored))
        validated(cfg)  # the schemas' value checks (__post_init__)
    except Exception as e:  # OmegaConf's errors, SACError, or whatever odd data raises
        reason = str(e) if isinstance(e, SACError) else _one_line(e)
        raise SACError(f"{where}the checkpoint's config is not valid: {reason}") from None
    assert isinstance(cfg, DictConfig)  # merged onto a structured TrainConfig
    stored_id = cfg.env.id
    if env_id is not None and env_id != stored_id and other_env:
        cfg.env.id = _literal(env_id)
    elif ":" in stored_id and env_id != stored_id:
        module = stored_id.split(":")[0]
        raise SACError(
            f"{where}the checkpoint's env.id '{stored_id}' would make Gymnasium import the "
            f"module '{module}'; a checkpoint does not get to run code, so if you trust that "
            f"module pass {confirm.format(stored_id)}"
        )
    return cfg


# A stored config was resolved when it was saved (build_state), so a `${` in it was literal in
# the run (an escaped `\${...}` in a tag or an env kwarg). Escaping keeps it literal instead of
# refusing it, so such a checkpoint still loads, unchanged: OmegaConf reads `\${` as `${`, and n
# backslashes before an escaped `${` are written 2n times (its grammar halves them there).
_INTERPOLATION = re.compile(r"(\\*)\$\{")


def _literal(value: Any) -> Any:
    """`value` with every string escaped so that OmegaConf resolves nothing in it."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_literal(v) for v in value]
    return value


def _one_line(e: BaseException) -> str:
    """An exception as one short line; OmegaConf's name the key on a later line (full_key)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    # OmegaConf calls an escaped (literal) `${` an interpolation it dereferences: not news here
    text = re.sub(r"^While dereferencing interpolation '.*?': ", "", text)
    key = getattr(e, "full_key", None)
    return (f"{key}: {text}" if key else text)[:300]


def agent_config(cfg: DictConfig) -> AgentConfig:
    """The checked AgentConfig of a composed or stored train config."""
    return AgentConfig(**OmegaConf.to_container(cfg.agent, resolve=True))  # type: ignore[arg-type]


RESUME_MODES = ("auto", "never")


def run_dir_for(resume: str, default: str) -> str:
    """The run directory for `resume`: the one a resume path belongs to, else `default`."""
    if resume in RESUME_MODES:
        return default
    p = Path(resume).expanduser()
    if p.is_dir():  # a run directory, or its checkpoints/ directory
        return str(p.parent if p.name == "checkpoints" else p)
    if p.parent.name == "checkpoints":  # a checkpoint file inside a run directory
        return str(p.parent.parent)
    return default  # a missing path (reported later) or a file outside any run directory


def hydra_subdir_for(resume: str, stamp: str) -> str:
    """Where Hydra records the composed config: .hydra, or beside it for a resume=PATH run so
    the original run's record is kept."""
    return ".hydra" if resume in RESUME_MODES else f".hydra/resumed_{stamp}"


def slug(env_id: str) -> str:
    """An env id as one path component: dm_control/walker-walk-v0 -> dm_control-walker-walk-v0."""
    return env_id.replace("/", "-").replace(":", "-")


def register_configs() -> None:
    """Register the schemas so conf/train.yaml and conf/eval.yaml can extend them, and the
    resolver conf/train.yaml uses to put a resumed run back in its own directory."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="export_schema", node=ExportConfig)
    if not OmegaConf.has_resolver("sac_run_dir"):
        OmegaConf.register_new_resolver("sac_run_dir", run_dir_for)
        OmegaConf.register_new_resolver("sac_hydra_subdir", hydra_subdir_for)
        OmegaConf.register_new_resolver("sac_slug", slug)


def config_dir() -> str:
    """Absolute path of the Hydra config directory.

    A wheel carries the configs inside the package (sac/conf); a source checkout or editable
    install reads them from the repository's top-level conf/.
    """
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parent.parent / "conf")
