"""Config schemas. Plain dataclasses, registered in Hydra's ConfigStore by `register_configs`.

The schemas make Hydra reject an unknown key or a value of the wrong type at start-up. This
module imports nothing from Hydra at module level so the agent can use `AgentConfig` freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING


@dataclass
class EnvConfig:
    """Which Gymnasium environment to train on and how to vectorise it."""

    id: str = "Pendulum-v1"  # any Gymnasium id with a continuous Box action space
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    num_envs: int = 1  # parallel training envs (Gymnasium vector API)
    vectorization: str = "sync"  # sync | async (async: one subprocess per env)


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
    adam_beta1: float = 0.9  # Adam's first-moment decay for all three optimizers


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


@dataclass
class ExportConfig:
    """Everything `sac-export` reads."""

    checkpoint: str = MISSING  # a checkpoint file, or a run directory (its latest checkpoint)
    format: str = "all"  # onnx | pt2 | all
    device: str = "cpu"  # a .pt2 program keeps its weights on the device it was exported on
    output_dir: str | None = None  # default: <run dir>/export/<checkpoint name>


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


def register_configs() -> None:
    """Register the schemas so conf/train.yaml and conf/eval.yaml can extend them, and the
    resolver conf/train.yaml uses to put a resumed run back in its own directory."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="export_schema", node=ExportConfig)
    if not OmegaConf.has_resolver("sac_run_dir"):
        OmegaConf.register_new_resolver("sac_run_dir", run_dir_for)
        OmegaConf.register_new_resolver("sac_hydra_subdir", hydra_subdir_for)


def config_dir() -> str:
    """Absolute path of the Hydra config directory.

    A wheel carries the configs inside the package (sac/conf); a source checkout or editable
    install reads them from the repository's top-level conf/.
    """
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parent.parent / "conf")
