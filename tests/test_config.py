"""Every config composes; the schema rejects unknown keys and wrong types."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from sac.config import EvalConfig, TrainConfig, config_dir, register_configs, validated
from sac.errors import SACError

ENV_CONFIGS = sorted(p.stem for p in (Path(config_dir()) / "env").glob("*.yaml"))
# The standard DMC tasks of the state presets; the first six are PlaNet's benchmark, which the
# pixel presets cover.
DMC_TASKS = (
    "cartpole-swingup",
    "walker-walk",
    "cheetah-run",
    "finger-spin",
    "reacher-easy",
    "ball_in_cup-catch",
    "hopper-hop",
    "humanoid-walk",
)
PLANET_TASKS = DMC_TASKS[:6]
EXPECTED_IDS = {
    "pendulum": "Pendulum-v1",
    "inverted_pendulum": "InvertedPendulum-v5",
    "inverted_double_pendulum": "InvertedDoublePendulum-v5",
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "humanoid": "Humanoid-v5",
    **{f"dmc_{task.replace('-', '_')}": f"dm_control/{task}-v0" for task in DMC_TASKS},
    **{f"dmc_{task.replace('-', '_')}_pixels": f"dm_control/{task}-v0" for task in PLANET_TASKS},
    "fetch_reach": "FetchReach-v4",
    "fetch_push": "FetchPush-v4",
}
# DrQ from pixels: experiment=drq_<task> on the env preset dmc_<task>_pixels
PIXEL_EXPERIMENTS = {
    name.replace("dmc_", "drq_").removesuffix("_pixels"): env_id
    for name, env_id in EXPECTED_IDS.items()
    if name.endswith("_pixels")
}
EXPECTED_IDS.update(PIXEL_EXPERIMENTS)
# Experiments that carry their reference's agent settings (rl-zoo3's, for Fetch with HER; DrQ's)
# rather than only an evaluation protocol.
WITH_AGENT_SETTINGS = {"fetch_reach", "fetch_push", *PIXEL_EXPERIMENTS}


def test_all_issue_envs_have_configs():
    assert set(EXPECTED_IDS) - set(PIXEL_EXPERIMENTS) <= set(ENV_CONFIGS)


@pytest.mark.parametrize("env", ENV_CONFIGS)
def test_every_env_config_composes(make_cfg, env):
    cfg = make_cfg(f"env={env}")
    assert cfg.env.id == EXPECTED_IDS.get(env, cfg.env.id)
    assert cfg.total_steps > cfg.agent.warmup_steps > 0
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_default_is_pendulum_with_paper_hyperparameters(make_cfg):
    cfg = make_cfg()
    assert cfg.env.id == "Pendulum-v1" and cfg.device == "auto" and cfg.seed == 0
    a = cfg.agent
    assert (a.gamma, a.tau, a.batch_size, a.buffer_size, list(a.hidden_sizes)) == (
        0.99,
        0.005,
        256,
        1_000_000,
        [256, 256],
    )
    assert a.actor_lr == a.critic_lr == a.alpha_lr == 3e-4
    assert a.num_critics == 2 and a.autotune_alpha and a.target_entropy is None
    assert not cfg.wandb.enabled


def test_env_settings_override_agent_defaults_and_the_command_line_wins(make_cfg):
    assert make_cfg("env=hopper").agent.warmup_steps == 10_000
    cfg = make_cfg("env=hopper", "agent.warmup_steps=7", "total_steps=100", "env.id=Walker2d-v5")
    assert (cfg.agent.warmup_steps, cfg.total_steps, cfg.env.id) == (7, 100, "Walker2d-v5")


def test_env_kwargs_can_be_set(make_cfg):
    cfg = make_cfg("+env.kwargs.g=3.0")
    assert cfg.env.kwargs == {"g": 3.0}


def test_eval_config_composes():
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose("eval", overrides=["checkpoint=x.pt", "episodes=3", "video=true"])
    assert (cfg.checkpoint, cfg.episodes, cfg.video, cfg.deterministic) == ("x.pt", 3, True, True)


@pytest.mark.parametrize("override", ["no_such_key=1", "agent.lr=1e-3", "env.idd=Hopper-v5"])
def test_unknown_keys_fail(make_cfg, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        make_cfg(override)


@pytest.mark.parametrize(
    "override", ["seed=abc", "agent.batch_size=big", "agent.gamma=[1]", "wandb.enabled=maybe"]
)
def test_wrong_types_fail(make_cfg, override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        make_cfg(override)


EXPERIMENTS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_its_evaluation_protocol(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    assert cfg.env.id == EXPECTED_IDS[experiment]  # each preset names its env preset
    assert cfg.eval_episodes == 10 and cfg.total_steps % cfg.eval_every == 0
    assert cfg.agent.name == ("drq" if experiment in PIXEL_EXPERIMENTS else "sac")
    if experiment in PIXEL_EXPERIMENTS:  # DrQ's 1000 random decisions, counted in frames
        assert cfg.env.pixels and cfg.agent.warmup_steps == 1000 * cfg.env.action_repeat
    if experiment in WITH_AGENT_SETTINGS:
        return
    assert list(cfg.agent.hidden_sizes) == [256, 256]
    # the command line still wins over the preset, and variants combine with it
    cfg = make_cfg(f"experiment={experiment}", "total_steps=100000", "agent=crossq")
    assert cfg.total_steps == 100_000 and cfg.agent.name == "crossq"
    assert cfg.agent.warmup_steps == make_cfg(f"env={experiment}").agent.warmup_steps


def test_experiments_cover_the_benchmark_suite():
    assert {
        "halfcheetah",
        "hopper",
        "walker2d",
        "ant",
        "humanoid",
        "inverted_pendulum",
        "inverted_double_pendulum",
        "pendulum",
    } <= set(EXPERIMENTS)


def test_values_are_checked_by_the_schemas_from_python_and_from_hydra(make_cfg):
    with pytest.raises(SACError, match="total_steps must be > 0"):
        TrainConfig(total_steps=0)
    with pytest.raises(SACError, match="episodes must be >= 1, got 0"):
        EvalConfig(checkpoint="x.pt", episodes=0)
    with pytest.raises(SACError, match=r"env\.num_envs must be >= 1"):
        validated(make_cfg("env.num_envs=0"))
    with pytest.raises(SACError, match="matmul_precision must be one of"):
        validated(make_cfg("matmul_precision=low"))
    settings = validated(make_cfg("agent=crossq"))
    assert isinstance(settings, TrainConfig) and settings.agent.critic_norm == "batch"
