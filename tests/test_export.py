"""sac-export: the exported files act like the trained actor, in the env's action units."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sac.agent import SAC
from sac.checkpoint import load_checkpoint
from sac.config import AgentConfig, agent_config, config_dir, register_configs
from sac.envs import action_bounds, make_env
from sac.errors import SACError
from sac.export import POLICY, POLICY_OBS_NORM, DeployedPolicy, check_parity, export
from sac.trainer import Trainer

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs the export extra (onnxruntime)")

# CountEnv (tests/conftest.py) has action bounds [-2, 4]: asymmetric, so a wrong offset or scale
# in the exported map shows. The `module:` form of the id makes the console script's process
# import conftest (and so register the env) when PYTHONPATH holds tests/; a checkpoint's
# module-qualified id is used only when passed again (env_id=...).
ENV_ID = "conftest:CountEnv-v0"
TINY = [
    f"env.id={ENV_ID}",
    "total_steps=200",
    "agent.warmup_steps=100",
    "eval_every=0",
    "eval_episodes=1",
    "checkpoint_every=0",
    "log_every=100",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
]


def compose_cfg(name: str, *overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        return compose(name, overrides=list(overrides))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real (tiny) training run on CountEnv: its checkpoint is what gets exported."""
    run_dir = tmp_path_factory.mktemp("run")
    Trainer(compose_cfg("train", *TINY), run_dir).train()
    return run_dir


def reference_actions(checkpoint: Path, obs: np.ndarray) -> np.ndarray:
    """What the trained agent does in the training env, built independently of sac.export:
    the deterministic action in [-1, 1], mapped by the env's own RescaleAction wrapper."""
    state = load_checkpoint(checkpoint)
    cfg = OmegaConf.create(state["config"])
    env = make_env(cfg.env.id, cfg.env.kwargs)
    agent = SAC(2, 1, agent_config(cfg))
    agent.load_state_dict(state["agent"], actor_only=True)
    unit = agent.act(torch.as_tensor(obs), deterministic=True).numpy()
    return np.stack([env.action(a) for a in unit]).astype(np.float32)


def random_obs(n: int, seed: int = 1) -> np.ndarray:
    """CountEnv observations are [t, episode]; spread them over a wide range of both."""
    return np.random.default_rng(seed).uniform(-5, 50, (n, 2)).astype(np.float32)


def export_all(run_dir: Path) -> tuple[Path, dict]:
    """Every format the installed packages allow, into run_dir/exported."""
    out = run_dir / "exported"
    fmt = "all" if HAS_ONNX else "pt2"
    info = export(
        compose_cfg(
            "export",
            f"checkpoint={run_dir}",
            f"format={fmt}",
            f"output_dir={out}",
            f"env_id={ENV_ID}",
        )
    )
    return out, info


@pytest.fixture(scope="module")
def exported(run_dir) -> tuple[Path, dict]:
    """Every format the installed packages allow, exported once for the module."""
    return export_all(run_dir)


@pytest.fixture(scope="module")
def obs_norm_exported(tmp_path_factory) -> tuple[Path, dict]:
    """A run with agent.obs_norm=true, exported: its files must take raw observations."""
    run_dir = tmp_path_factory.mktemp("obs_norm_run")
    Trainer(compose_cfg("train", *TINY, "agent.obs_norm=true"), run_dir).train()
    return export_all(run_dir)


def test_deployed_policy_applies_the_training_envs_rescaling():
    """Untrained weights are enough here: the map to [low, high] must be gymnasium's own."""
    torch.manual_seed(0)
    env = make_env("CountEnv-v0")
    low, high = action_bounds(env)
    assert low.tolist() == [-2.0] and high.tolist() == [4.0]
    agent = SAC(2, 1, AgentConfig(hidden_sizes=[16]))
    obs = torch.as_tensor(random_obs(500))
    unit = agent.act(obs, deterministic=True).numpy()
    expected = np.stack([env.action(a) for a in unit])
    got = DeployedPolicy(agent.actor, low, high)(obs).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got.min() < 0 < 1 < got.max()  # the actions span enough of [-2, 4] to tell maps apart


def test_deployed_policy_normalises_raw_observations_as_the_agent_does():
    """With obs_norm, the deployed module takes raw observations through the agent's
    statistics (clipped) before the actor, exactly as SAC.act does."""
    torch.manual_seed(0)
    env = make_env("CountEnv-v0")
    low, high = action_bounds(env)
    agent = SAC(2, 1, AgentConfig(hidden_sizes=[16], obs_norm=True, obs_norm_clip=3.0))
    agent.update_obs_norm(torch.as_tensor(random_obs(200, seed=5)) * 0.2 + 3.0)
    obs = torch.as_tensor(random_obs(500))
    expected = np.stack([env.action(a) for a in agent.act(obs, deterministic=True).numpy()])
    policy = DeployedPolicy(agent.actor, low, high, agent.obs_norm)
    got = policy(obs).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    raw = DeployedPolicy(agent.actor, low, high)(obs).detach().numpy()
    assert np.abs(raw - got).max() > 0.1  # the normalisation changes the actions
    assert "obs_norm.loc" in policy.state_dict() and "obs_norm.scale" in policy.state_dict()


def test_check_parity_refuses_a_mismatch():
    torch.manual_seed(0)
    env = make_env("CountEnv-v0")
    policy = DeployedPolicy(SAC(2, 1, AgentConfig(hidden_sizes=[16])).actor, *action_bounds(env))
    obs = random_obs(100)

    def exact(parts):
        return policy(torch.as_tensor(parts[0])).numpy()

    # Not 0: PyTorch itself rounds a little differently per batch size (check_parity varies it).
    assert check_parity(policy, exact, [obs], "test") <= 1e-5
    with pytest.raises(SACError, match="differs from the PyTorch actor"):
        check_parity(policy, lambda o: exact(o) + 1e-3, [obs], "test")
    with pytest.raises(SACError, match="differs from the PyTorch actor"):
        check_parity(policy, lambda o: np.full_like(exact(o), np.nan), [obs], "test")


def test_onnx_without_its_packages_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr("sac.export.ONNX_MODULES", ("onnx", "no_such_module_for_sac_tests"))
    cfg = compose_cfg("export", f"checkpoint={tmp_path}", "format=onnx")
    with pytest.raises(SACError, match=r"no_such_module_for_sac_tests.*\.\[export\]"):
        export(cfg)


@pytest.mark.slow
def test_sidecar_describes_the_export(run_dir, exported):
    out, info = exported
    assert json.loads((out / "policy.json").read_text()) == info
    assert info["env"] == ENV_ID and info["checkpoint_steps"] == 200
    assert (info["obs_dim"], info["act_dim"]) == (2, 1)
    assert (info["action_low"], info["action_high"]) == ([-2.0], [4.0])
    assert info["input"]["name"] == "obs" and info["output"]["name"] == "action"
    assert info["checkpoint"] == str(run_dir / "checkpoints" / "step_0000000200.pt")
    for fmt in info["formats"]:
        assert (out / info["files"][fmt]).stat().st_size > 1000
        assert info["max_abs_error"][fmt] <= 1e-5
    assert sorted(p.name for p in out.iterdir()) == sorted(["policy.json", *info["files"].values()])


@pytest.mark.slow
def test_pt2_matches_the_trained_actor(run_dir, exported):
    out, info = exported
    obs = random_obs(1000)
    expected = reference_actions(Path(info["checkpoint"]), obs)
    assert expected.std() > 0.05 and expected.min() >= -2 and expected.max() <= 4
    program = torch.export.load(out / "policy.pt2").module()
    for batch in (1, 1000):  # exported with a batch of 3
        got = np.concatenate(
            [program(torch.as_tensor(c)).numpy() for c in np.split(obs, 1000 // batch)]
        )
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
@needs_onnx
def test_onnx_matches_the_trained_actor_in_onnxruntime(exported):
    import onnxruntime as ort

    out, info = exported
    obs = random_obs(1000, seed=2)
    expected = reference_actions(Path(info["checkpoint"]), obs)
    session = ort.InferenceSession(out / "policy.onnx", providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["obs"]
    assert session.get_inputs()[0].shape == ["batch", 2]
    for batch in (1, 1000):
        got = np.concatenate(
            [session.run(["action"], {"obs": c})[0] for c in np.split(obs, 1000 // batch)]
        )
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_an_obs_norm_policy_exports_with_its_normalisation(exported, obs_norm_exported):
    """The exported files of an agent.obs_norm=true run take raw observations: they match the
    trained agent acting on raw observations (which normalises them), in every format."""
    assert exported[1]["policy"] == POLICY
    out, info = obs_norm_exported
    assert info["policy"] == POLICY_OBS_NORM
    obs = random_obs(1000, seed=5)
    expected = reference_actions(Path(info["checkpoint"]), obs)
    assert expected.std() > 0.05
    program = torch.export.load(out / "policy.pt2").module()
    runners = {"pt2": lambda o: program(torch.as_tensor(o)).numpy()}
    if HAS_ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(out / "policy.onnx", providers=["CPUExecutionProvider"])
        runners["onnx"] = lambda o: session.run(["action"], {"obs": o})[0]
    assert set(runners) == set(info["formats"])
    for fmt, run in runners.items():
        for batch in (1, 1000):
            got = np.concatenate([run(c) for c in np.split(obs, 1000 // batch)])
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=fmt)
        assert info["max_abs_error"][fmt] <= 1e-5


@pytest.mark.slow
def test_cli_exports_a_run_directory_next_to_its_checkpoint(run_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # lets the script import CountEnv
    args = [f"checkpoint={run_dir}", "format=pt2", f"env_id={ENV_ID}"]
    proc = run_cli(["sac-export", *args], run_dir)
    assert proc.returncode == 0, proc.stderr
    out = run_dir / "export" / "step_0000000200"
    info = json.loads(proc.stdout)
    assert info == json.loads((out / "policy.json").read_text())
    assert info["formats"] == ["pt2"] and info["env"] == ENV_ID
    obs = random_obs(64, seed=3)
    got = torch.export.load(out / "policy.pt2").module()(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(
        got, reference_actions(run_dir / "checkpoints" / "last.pt", obs), atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ([], "no checkpoint given; use sac-export checkpoint=PATH"),
        (["checkpoint=missing.pt", "format=pt2"], "checkpoint 'missing.pt' does not exist"),
        (["checkpoint=notes.pt", "format=pt2"], "not a readable sac checkpoint"),
        (["checkpoint=RUN", "format=torchscript"], "format=torchscript is not a known format"),
        (["checkpoint=RUN", "format=pt2", "output_dir=/proc/sac-x"], "cannot write to output_dir"),
        (["checkpoint=RUN", "format=pt2", "output_dir=notes.pt"], "output_dir notes.pt"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(run_dir, tmp_path, monkeypatch, args, phrase):
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    if "checkpoint=RUN" in args:
        args = [a.replace("RUN", str(run_dir)) for a in args] + [f"env_id={ENV_ID}"]
    proc = run_cli(["sac-export", *args], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sac-export: error: "), proc.stderr
    assert phrase in lines[0]


@pytest.fixture(scope="module")
def simbav2_run_dir(tmp_path_factory) -> Path:
    """A tiny agent=simbav2 run on CountEnv: hyperspherical actor (two residual blocks)."""
    run_dir = tmp_path_factory.mktemp("simbav2")
    overrides = [*TINY, "agent=simbav2", "agent.critic_hidden_sizes=[32]", "agent.critic_bins=11"]
    Trainer(compose_cfg("train", *overrides), run_dir).train()
    return run_dir


@pytest.mark.slow
def test_simbav2_actor_exports_and_matches_the_trained_actor(simbav2_run_dir, tmp_path):
    """The SimbaV2 actor's l2 projections and scalers survive torch.export and ONNX."""
    fmt = "all" if HAS_ONNX else "pt2"
    info = export(
        compose_cfg(
            "export",
            f"checkpoint={simbav2_run_dir}",
            f"format={fmt}",
            f"output_dir={tmp_path}",
            f"env_id={ENV_ID}",
        )
    )
    assert all(info["max_abs_error"][f] <= 1e-5 for f in info["formats"])
    obs = random_obs(1000, seed=5)
    expected = reference_actions(Path(info["checkpoint"]), obs)
    assert expected.std() > 0.01 and expected.min() >= -2 and expected.max() <= 4
    program = torch.export.load(tmp_path / "policy.pt2").module()
    runners = {"pt2": lambda o: program(torch.as_tensor(o)).numpy()}
    if HAS_ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(tmp_path / "policy.onnx", providers=["CPUExecutionProvider"])
        runners["onnx"] = lambda o: session.run(["action"], {"obs": o})[0]
    for name, run in runners.items():
        for batch in (1, 1000):
            got = np.concatenate([run(c) for c in np.split(obs, 1000 // batch)])
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_export_on_cuda_matches_the_trained_actor(run_dir, tmp_path):
    fmt = "all" if HAS_ONNX else "pt2"
    cfg = compose_cfg(
        "export",
        f"checkpoint={run_dir}",
        f"format={fmt}",
        "device=cuda",
        f"output_dir={tmp_path}",
        f"env_id={ENV_ID}",
    )
    info = export(cfg)
    obs = random_obs(256, seed=4)
    expected = reference_actions(Path(info["checkpoint"]), obs)
    program = torch.export.load(tmp_path / "policy.pt2").module()
    got = program(torch.as_tensor(obs, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
