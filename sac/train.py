"""`sac-train` / `python -m sac.train`: the Hydra entry point, and the choice between a fresh
run and a resumed one."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sac.config import agent_config, config_dir, register_configs, stored_train_config
from sac.errors import SACError

register_configs()
log = logging.getLogger("sac")

# Top-level keys a resumed run may change: they do not change the experiment, only how long it
# runs, where it runs and what it records.
SAFE_ON_RESUME = frozenset(
    {
        "total_steps",
        "eval_every",
        "eval_episodes",
        "eval_video",
        "checkpoint_every",
        "keep_checkpoints",
        "save_buffer",
        "log_every",
        "torch_threads",
        "compile",
        "cudagraphs",
        "matmul_precision",
        "device",
        "resume",
        "logger",
        "wandb",
        "tensorboard",
    }
)


def train(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train with a composed config into `run_dir`, resuming where `cfg.resume` says.

    `overrides` are the user's command-line overrides: on resume, those touching SAFE_ON_RESUME
    keys apply; any other that differs from the stored config is refused.
    """
    from sac.trainer import Trainer  # torch and gymnasium load only once the config is valid

    cfg, checkpoint = plan_resume(cfg, run_dir, overrides or [])
    return Trainer(cfg, run_dir, resume_from=checkpoint).train()


def plan_resume(
    cfg: DictConfig, run_dir: Path, overrides: list[str]
) -> tuple[DictConfig, Path | None]:
    """The config to train with and the checkpoint to continue from (None: a fresh run)."""
    from sac.checkpoint import checkpoint_dir, load_checkpoint, step_checkpoints

    mode = cfg.resume
    if mode == "never":
        _move_old_outputs_aside(run_dir)
        return cfg, None
    if mode == "auto":
        candidates = step_checkpoints(run_dir / "checkpoints")
        if not candidates:  # a fresh run; metrics of one that died before its first checkpoint
            _move_aside(
                run_dir,
                [p for p in [run_dir / "metrics.csv"] if p.exists()],
                "the metrics of an earlier run that left no checkpoint",
            )
            return cfg, None
    else:
        path = Path(mode).expanduser()
        if not path.exists():
            raise SACError(f"resume={mode}: no such checkpoint or run directory")
        candidates = [path] if path.is_file() else step_checkpoints(checkpoint_dir(path))
        if not candidates:
            raise SACError(f"resume={mode}: no checkpoint (step_*.pt) in that directory")
    errors = []
    for candidate in reversed(candidates):  # newest first; fall back past damaged files
        try:
            state = load_checkpoint(candidate)
            break
        except SACError as e:
            errors.append(str(e))
            log.warning("skipping unusable checkpoint: %s", e)
    else:
        raise SACError(f"no usable checkpoint to resume from: {'; '.join(errors)}")
    merged = _resumed_config(state["config"], cfg, overrides, candidate)
    _check_fits(state, merged, candidate)
    # Checkpoints newer than the one resumed (a damaged one, or a branch being redone) would
    # later pass for the newest: keep them, but out of the way.
    own = step_checkpoints(run_dir / "checkpoints")
    if candidate.resolve() in {p.resolve() for p in own}:
        newer = own[[p.resolve() for p in own].index(candidate.resolve()) + 1 :]
        _move_aside(run_dir, newer, "checkpoints newer than the resumed one")
    return merged, candidate


def _resumed_config(
    stored: dict[str, Any], cfg: DictConfig, overrides: list[str], path: Path
) -> DictConfig:
    """The stored config of checkpoint `path` with the user's safe overrides applied; unsafe
    changes are refused."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # A stored module:Env-v0 id is built only if the user's own config (their command line or
    # config files: e.g. the same command requeued) names it too.
    merged = stored_train_config(
        stored, cfg.env.id, other_env=False, confirm="env.id={}", path=path
    )
    refused = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key.startswith("hydra") or key.startswith("+hydra"):
            continue
        new = OmegaConf.select(cfg, key)
        if key.split(".")[0] in SAFE_ON_RESUME:
            OmegaConf.update(merged, key, new, merge=False)
        elif _plain(new) != _plain(OmegaConf.select(merged, key)):
            refused.append(override.input_line)
    if refused:
        raise SACError(
            f"cannot change {', '.join(refused)} when resuming: it would change the experiment "
            f"(may change: {', '.join(sorted(SAFE_ON_RESUME))}); start a new run with "
            "resume=never or another hydra.run.dir"
        )
    return merged


def _check_fits(state: dict[str, Any], cfg: DictConfig, path: Path) -> None:
    """Refuse a checkpoint whose tensors are not what its config describes before the trainer
    allocates what the config asks for (networks, the replay buffer): a damaged or crafted size
    is one line, not an attempt at an enormous allocation."""
    from sac.agent import check_state_shapes
    from sac.checkpoint import restoring_from, saved_obs_shape, saved_state_dim

    spaces, buffer = state["spaces"], state.get("buffer")
    with restoring_from(path):
        check_state_shapes(
            saved_obs_shape(spaces),
            spaces["act_dim"],
            agent_config(cfg),
            state["agent"],
            state_dim=saved_state_dim(spaces),
        )
        size, n = cfg.agent.buffer_size, cfg.env.num_envs
        # (the HER and frame buffers round the size down to a multiple of the env count)
        if buffer is not None and buffer["capacity"] not in (size, size - size % n):
            raise ValueError(
                f"its buffer holds {buffer['capacity']} transitions where its config's "
                f"agent.buffer_size is {cfg.agent.buffer_size}"
            )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _move_old_outputs_aside(run_dir: Path) -> None:
    """resume=never in a directory that holds a run: keep its outputs, under previous_<time>/."""
    old = [p for p in (run_dir / "checkpoints", run_dir / "metrics.csv") if p.exists()]
    _move_aside(run_dir, old, "resume=never: the earlier run's outputs")


def _move_aside(run_dir: Path, paths: list[Path], what: str) -> None:
    """Move `paths` into <run_dir>/previous_<time>/ (nothing already written is deleted)."""
    if not paths:
        return
    aside = run_dir / f"previous_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    aside.mkdir(exist_ok=True)
    for p in paths:
        shutil.move(p, aside / p.name)
    log.info("moved %s to %s", what, aside)


class CheckRunDir(Callback):
    """Hydra callback (conf/train.yaml): an unusable run directory is refused with one line
    before Hydra tries to create it (Hydra itself would fail with a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _require_writable_dir(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _require_writable_dir(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


def _require_writable_dir(path: Path, key: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # permission bits do not stop root; this does
            pass
    except OSError as e:
        print(
            f"sac-train: error: cannot write to {key}={path} ({e.strerror}); choose a writable "
            f"directory with {key}=...",
            file=sys.stderr,
        )
        sys.exit(1)


class JobError(CompactHydraException):
    """Bad input in a job that a launcher runs away from the sweep's process (submitit, joblib,
    Ray). Hydra hands it back to the sweep, which prints the overrides of the job and this one
    line and exits 1; sys.exit in the job would reach the sweep as a traceback, or not at all."""


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    """One run. Returns its final deterministic evaluation return: the objective of an Optuna
    sweep (hydra/sweeper=sac_optuna), which Hydra ignores otherwise.

    In an Optuna sweep, a run that fails (a SACError: bad input, non-finite losses; or any other
    exception) raises, and the sweeper records it as a failed trial (TrialState.FAIL): with
    sac_optuna's max_failure_rate of 1.0 the study goes on, and its sampler leaves the trial out.
    A stop signal (Ctrl-C, SIGTERM) stops the study as it stops any sweep: the run checkpoints
    and sac-train exits 128 + the signal.
    """
    hydra_cfg = HydraConfig.get()
    study = _optuna_sweep(hydra_cfg)
    in_process = hydra_cfg.launcher._target_.endswith(".BasicLauncher")
    try:
        summary = train(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except SACError as e:
        if study:  # in the trial's train.log; the sweeper logs the message of its exception
            log.error("sac-train: error: %s", e)
        if study or (hydra_cfg.mode == RunMode.MULTIRUN and not in_process):
            raise JobError(f"sac-train: error: {e}") from None
        print(f"sac-train: error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        if study:  # the sweeper keeps only the exception's message
            log.exception("the trial crashed")
        raise
    if summary["interrupted_by"]:
        if study and in_process:
            log.info(
                "the study stops here; to continue it, run the same command with "
                "hydra.sweep.dir=%s",
                hydra_cfg.sweep.dir,
            )
        sys.exit(128 + int(getattr(__import__("signal"), summary["interrupted_by"])))
    return summary["eval_return"]


def _optuna_sweep(hydra_cfg: DictConfig) -> bool:
    """Whether this run is a trial of hydra-optuna-sweeper's study (warning if it minimises)."""
    if hydra_cfg.mode != RunMode.MULTIRUN or not str(
        OmegaConf.select(hydra_cfg, "sweeper._target_", default="")
    ).endswith(".OptunaSweeper"):
        return False
    if "minimize" in str(hydra_cfg.sweeper.direction):
        log.warning(
            "hydra.sweeper.direction=minimize: the study will minimise the evaluation return; "
            "use hydra/sweeper=sac_optuna or hydra.sweeper.direction=maximize"
        )
    return True


# hydra/launcher and hydra/sweeper choices (conf/hydra/ and the plugins' own) -> the plugin's
# package under hydra_plugins, its distribution, and the extra of sac that installs it.
LAUNCHER_PLUGINS = {
    "slurm": ("hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_slurm": ("hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_local": ("hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "local_parallel": ("hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    "joblib": ("hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    "ray_cluster": ("hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "ray": ("hydra_ray_launcher", "hydra-ray-launcher", "ray"),
}
SWEEPER_PLUGINS = {
    "sac_optuna": ("hydra_optuna_sweeper", "hydra-optuna-sweeper", "optuna"),
    "optuna": ("hydra_optuna_sweeper", "hydra-optuna-sweeper", "optuna"),
}


def missing_plugin(args: list[str]) -> str | None:
    """The error for a `hydra/launcher=NAME` or `hydra/sweeper=NAME` override whose plugin is
    not installed, or None.

    Hydra would only say that it "Could not load 'hydra/launcher/submitit_slurm'"."""
    import importlib.util

    plugins = {"hydra/launcher": LAUNCHER_PLUGINS, "hydra/sweeper": SWEEPER_PLUGINS}
    for arg in args:
        key, _, name = arg.lstrip("+~").partition("=")
        if name not in plugins.get(key, {}):
            continue
        module, dist, extra = plugins[key][name]
        if importlib.util.find_spec(f"hydra_plugins.{module}") is None:
            return (
                f"{key}={name} needs the {dist} plugin; install it with pip install 'sac[{extra}]'"
            )
    return None


def main() -> None:
    error = missing_plugin(sys.argv[1:])
    if error:
        print(f"sac-train: error: {error}", file=sys.stderr)
        sys.exit(1)
    _main()


if __name__ == "__main__":
    main()
