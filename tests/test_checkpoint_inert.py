"""A checkpoint is inert: a crafted or damaged file imports nothing, resolves nothing, and fails
as one line in sac-eval, sac-export, load_policy and resume, never as a traceback."""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import run_cli
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sac.agent import SAC
from sac.buffer import ReplayBuffer
from sac.checkpoint import load_checkpoint, save_checkpoint, step_checkpoints, step_path
from sac.config import agent_config, config_dir, register_configs, stored_train_config
from sac.errors import SACError
from sac.evaluate import evaluate
from sac.export import export
from sac.policy import load_policy
from sac.run_state import restore_state
from sac.train import plan_resume, train
from sac.trainer import Trainer

SMALL = [
    "total_steps=60",
    "agent.warmup_steps=50",
    "agent.batch_size=8",
    "agent.hidden_sizes=[8]",
    "agent.buffer_size=100",
    "eval_every=0",
    "eval_episodes=1",
    "checkpoint_every=0",
    "log_every=100",
    "device=cpu",
]
TRAP = "${oc.env:SAC_INERT_TRAP}"  # resolved, it would read the environment


@functools.cache  # composing takes ~50 ms; the property tests compose the same few configs
def _compose(name: str, *overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        return compose(name, overrides=list(overrides))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny Pendulum run, replay buffer included (36 kB)."""
    run_dir = tmp_path_factory.mktemp("base")
    Trainer(_compose("train", *SMALL), run_dir).train()
    return step_checkpoints(run_dir / "checkpoints")[-1]


def _craft(base: Path, run_dir: Path, edit: Callable[[dict], Any]) -> Path:
    """`base` copied into `run_dir` as sac-train writes it, its payload changed by `edit`."""
    state = load_checkpoint(base, mmap=False)
    edit(state)
    del state["format_version"]
    path = step_path(run_dir, state["counters"]["env_steps"])
    save_checkpoint(state, path)
    return path


def _set_env_id(env_id: str) -> Callable[[dict], None]:
    return lambda state: state["config"]["env"].update(id=env_id)


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A real importable module that leaves a marker file when imported; `env_id` names it
    the way Gymnasium imports a module (`module:Env`), with an env that exists."""
    name = f"must_not_be_imported_{uuid.uuid4().hex[:8]}"
    where = tmp_path / "modules"
    where.mkdir()
    marker = tmp_path / "imported"
    (where / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(where))
    paths = [str(where), os.environ.get("PYTHONPATH", "")]  # for the CLI's process too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    yield SimpleNamespace(name=name, env_id=f"{name}:Pendulum-v1", marker=marker)
    sys.modules.pop(name, None)


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert message and "\n" not in message
    return message


# ----------------------------------------------------------------------- module:Env-v0 ids
def test_a_module_env_id_from_a_checkpoint_is_refused_without_importing_it(
    base, probe, tmp_path, make_cfg
):
    ckpt = _craft(base, tmp_path / "run", _set_env_id(probe.env_id))
    what = f"import the module '{probe.name}'"
    with pytest.raises(SACError) as e:
        evaluate(_compose("eval", f"checkpoint={ckpt}", f"output_dir={tmp_path / 'eval'}"))
    assert what in _one_line(e) and f"pass env_id={probe.env_id}" in str(e.value)
    with pytest.raises(SACError) as e:
        export(_compose("export", f"checkpoint={ckpt}", "format=pt2", f"output_dir={tmp_path}"))
    assert what in _one_line(e) and f"pass env_id={probe.env_id}" in str(e.value)
    with pytest.raises(SACError) as e:
        load_policy(ckpt)
    assert what in _one_line(e) and f"env_id='{probe.env_id}'" in str(e.value)
    for env_id in ([], ["env.id=MountainCarContinuous-v0"]):  # the default, or another id
        overrides = [*SMALL, *env_id, f"resume={ckpt}", "total_steps=70"]
        with pytest.raises(SACError) as e:
            train(make_cfg(*overrides), tmp_path / "run", overrides)
        assert what in _one_line(e) and f"pass env.id={probe.env_id}" in str(e.value)
    assert not probe.marker.exists() and probe.name not in sys.modules


def test_a_module_env_id_passed_again_is_built(base, probe, tmp_path, make_cfg):
    ckpt = _craft(base, tmp_path / "run", _set_env_id(probe.env_id))
    summary = evaluate(
        _compose("eval", f"checkpoint={ckpt}", "episodes=1", f"env_id={probe.env_id}")
    )
    assert summary["env"] == probe.env_id and probe.marker.exists()
    assert load_policy(ckpt, env_id=probe.env_id)(torch.zeros(3).numpy()).shape == (1,)
    overrides = [*SMALL, f"env.id={probe.env_id}", f"resume={ckpt}", "total_steps=70"]
    assert train(make_cfg(*overrides), tmp_path / "run", overrides)["steps"] == 70


def test_another_env_id_is_used_instead_and_must_fit(base, probe, tmp_path):
    """sac-eval env_id=OTHER evaluates on OTHER: the stored module is never imported, and
    check_spaces still refuses an env of other sizes."""
    ckpt = _craft(base, tmp_path / "run", _set_env_id(probe.env_id))
    summary = evaluate(_compose("eval", f"checkpoint={ckpt}", "episodes=1", "env_id=Pendulum-v1"))
    assert summary["env"] == "Pendulum-v1"
    with pytest.raises(SACError, match=r"obs shape \(3,\) and 1 action dims.*MountainCar") as e:
        evaluate(_compose("eval", f"checkpoint={ckpt}", "env_id=MountainCarContinuous-v0"))
    _one_line(e)
    assert not probe.marker.exists() and probe.name not in sys.modules


@pytest.mark.slow
def test_cli_refuses_a_module_env_id_from_a_checkpoint_in_one_line(base, probe, tmp_path):
    ckpt = _craft(base, tmp_path / "run", _set_env_id(probe.env_id))
    proc = run_cli(["sac-eval", f"checkpoint={ckpt}", "episodes=1"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sac-eval: error: "), proc.stderr
    assert f"import the module '{probe.name}'" in lines[0]
    assert f"env_id={probe.env_id}" in lines[0]
    assert not probe.marker.exists()


# --------------------------------------------------------------------------- interpolations
def _plant_traps(state: dict) -> None:
    state["config"]["wandb"]["project"] = TRAP
    state["config"]["wandb"]["tags"] = [TRAP, "\\" + TRAP, "a\\\\" + TRAP]
    state["config"]["tensorboard"]["log_dir"] = TRAP


def test_interpolations_in_a_stored_config_stay_literal(base, tmp_path, monkeypatch, make_cfg):
    monkeypatch.setenv("SAC_INERT_TRAP", "resolved")
    ckpt = _craft(base, tmp_path / "run", _plant_traps)
    cfg = stored_train_config(load_checkpoint(ckpt)["config"])
    assert cfg.wandb.project == TRAP and cfg.tensorboard.log_dir == TRAP
    assert list(cfg.wandb.tags) == [TRAP, "\\" + TRAP, "a\\\\" + TRAP]
    assert evaluate(_compose("eval", f"checkpoint={ckpt}", "episodes=1"))["episodes"] == 1
    load_policy(ckpt)
    overrides = [*SMALL, f"resume={ckpt}", "total_steps=70"]
    merged, _ = plan_resume(make_cfg(*overrides), tmp_path / "run", overrides)
    assert merged.wandb.project == TRAP
    train(make_cfg(*overrides), tmp_path / "run", overrides)  # and it saves them back as they were
    resaved = load_checkpoint(tmp_path / "run")
    assert resaved["counters"]["env_steps"] == 70
    assert resaved["config"]["wandb"] == load_checkpoint(ckpt)["config"]["wandb"]


def test_an_interpolation_in_a_typed_field_is_refused_not_resolved(base, tmp_path, monkeypatch):
    monkeypatch.setenv("SAC_INERT_TRAP", "3")  # resolved, it would be a valid seed
    ckpt = _craft(base, tmp_path / "run", lambda state: state["config"].update(seed=TRAP))
    with pytest.raises(SACError, match="the checkpoint's config is not valid: seed: ") as e:
        load_policy(ckpt)
    assert str(ckpt) in _one_line(e)


def test_a_real_stored_config_round_trips_unchanged(base):
    stored = load_checkpoint(base)["config"]
    assert OmegaConf.to_container(stored_train_config(stored), resolve=True) == stored


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="\\${}:a.", max_size=14))
def test_any_string_round_trips_literally(text):
    """Escaping `${` keeps every string as it was, backslashes included (OmegaConf's grammar
    halves the backslashes before an escaped `${`)."""
    stored = {"wandb": {"project": text, "tags": [text]}, "env": {"kwargs": {"k": text}}}
    cfg = OmegaConf.to_container(stored_train_config(stored), resolve=True)
    assert cfg["wandb"]["project"] == text and cfg["wandb"]["tags"] == [text]
    assert cfg["env"]["kwargs"] == {"k": text}


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ([1, 2], "not a dictionary"),
        ({"no_such_key": 1}, "no_such_key: Key 'no_such_key' not in 'TrainConfig'"),
        ({"agent": {"batch_size": "many"}}, "agent.batch_size: Value 'many'"),
        ({"agent": {"gamma": 2.0}}, r"agent.gamma must be in \[0, 1\]"),
        ({"agent": {"hidden_sizes": {"a": 1}}}, "Cannot merge DictConfig with ListConfig"),
    ],
)
def test_an_invalid_stored_config_is_one_line(config, phrase):
    with pytest.raises(SACError, match=f"the checkpoint's config is not valid: .*{phrase}") as e:
        stored_train_config(config)
    _one_line(e)


# ------------------------------------------------------------------- structure and damage
def _restore(path: Path) -> tuple[SAC, ReplayBuffer]:
    """A resume's restore into a fresh agent and buffer built as the base run's trainer builds
    them, then one update (an optimizer state that loads but cannot step would fail there)."""
    cfg = agent_config(_compose("train", *SMALL))
    agent, buffer = SAC(3, 1, cfg), ReplayBuffer(cfg.buffer_size, 3, 1, "cpu")
    with torch.random.fork_rng(devices=[]):  # restore_state sets the global RNG
        restore_state(path, agent, buffer, torch.Generator(), (3,), 1, "Pendulum-v1")
        if len(buffer) >= 8:
            agent.update(buffer.sample(8))
    return agent, buffer


def _read_every_way(path: Path, run_dir: Path) -> dict[str, Any]:
    """What each reader makes of `path`: its result, or the SACError message (one line).
    Any other exception propagates and fails the test."""
    overrides = ["device=cpu", f"resume={path}"]  # sac-train resume=PATH
    readers = {  # sac-eval and sac-export load as load_policy does
        "policy": lambda: load_policy(path),
        "restore": lambda: _restore(path),
        "resume": lambda: plan_resume(_compose("train", *overrides), run_dir, overrides),
    }
    results: dict[str, Any] = {}
    for name, read in readers.items():
        try:
            results[name] = read()
        except SACError as e:
            message = str(e)
            assert message and "\n" not in message, message
            results[name] = message
    return results


def _record_of(data: bytes, tensor: torch.Tensor) -> int:
    """Where the bytes of `tensor` lie in a checkpoint file."""
    at = data.find(tensor.numpy().tobytes())
    assert at > 0
    return at


def test_torch_loads_a_flipped_bit_silently_and_load_checkpoint_refuses_it(base, tmp_path):
    """PyTorch's zip reader does not check the CRC-32 each record carries: a bit flipped in a
    weight loads as another number. load_checkpoint checks them."""
    data = bytearray(base.read_bytes())
    weight = load_checkpoint(base)["agent"]["actor"]["net.0.weight"]
    data[_record_of(bytes(data), weight) + 2] ^= 0x40
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(data)
    for mmap in (True, False):
        silently = torch.load(damaged, weights_only=True, mmap=mmap)["agent"]["actor"]
        assert not torch.equal(silently["net.0.weight"], weight)
    with pytest.raises(SACError, match=r"is damaged \(BadZipFile: Bad CRC-32") as e:
        load_checkpoint(damaged)
    _one_line(e)


def test_a_damaged_buffer_stops_a_resume_but_not_a_policy_load(base, tmp_path):
    """sac-eval, sac-export and load_policy leave the records only the buffer uses unread, so
    their damage shows where they are read: on resume (which falls back past the file)."""
    data = bytearray(base.read_bytes())
    obs = load_checkpoint(base)["buffer"]["obs"]
    data[_record_of(bytes(data), obs) + 5] ^= 0x01
    damaged = tmp_path / "run" / "checkpoints" / base.name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(data)
    results = _read_every_way(damaged, tmp_path / "run")
    assert not isinstance(results["policy"], str)
    assert "is damaged (BadZipFile: Bad CRC-32" in results["restore"]
    assert "no usable checkpoint to resume from" in results["resume"]


def _first_optimizer_state(state: dict) -> dict:
    return next(iter(state["agent"]["critic_optim"]["state"].values()))


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda s: s.update(config="x"), "its config is missing or not a dictionary"),
        (lambda s: s.update(format_version=torch.ones(2)), "format version"),
        (lambda s: s["counters"].update(env_steps="60"), "counters.env_steps is not an integer"),
        (lambda s: s["spaces"].update(obs_dim=3.0), "spaces.obs_dim is not an integer"),
        (lambda s: s["spaces"].update(obs_shape=[4]), "spaces.obs_shape is not a vector's or"),
        (lambda s: s["spaces"].update(action_low=[-2.0, 0.0]), "spaces.action_low is not a"),
        (lambda s: s["agent"]["actor"].update(x=[1.0]), "agent.actor is missing or not a dict"),
        (lambda s: s["agent"].pop("critic_optim"), "agent.critic_optim is missing"),
        (lambda s: s["buffer"].update(pos=100), r"buffer.pos is not an integer in \[0, 100\)"),
        (lambda s: s["buffer"].update(obs=s["buffer"]["obs"][1:]), "buffer.obs does not hold"),
        (lambda s: s["loggers"].update(wandb_run_id=5), "loggers.wandb_run_id is not a string"),
        (lambda s: s["rng"].update(torch="abc"), "'str' object has no attribute 'cpu'"),
        (lambda s: s["rng"].update(torch=torch.zeros(3)), "does not fit the agent"),
        (
            lambda s: s["agent"]["actor"].update({"net.0.weight": torch.zeros(8, 4)}),
            r"actor.net.0.weight has shape \(8, 4\) where the config gives \(8, 3\)",
        ),
        (
            lambda s: s["config"]["agent"].update(hidden_sizes=[2**40]),
            r"actor.net.0.weight has shape \(8, 3\) where the config gives \(1099511627776, 3\)",
        ),
        (
            lambda s: s["agent"]["actor"]["net.0.bias"].fill_(math.nan),
            "the loaded parameters are not all finite",
        ),
        (
            lambda s: _first_optimizer_state(s).update(exp_avg=torch.zeros(1)),
            "a saved optimizer state does not fit its parameter",
        ),
        (
            lambda s: s["agent"]["critic_optim"]["param_groups"][0].update(lr="fast"),
            None,  # the optimizer's settings come from the config: this loads, and steps
        ),
        (
            lambda s: s["config"]["agent"].update(buffer_size=10**12),
            "its buffer holds 100 transitions where its config's agent.buffer_size is",
        ),
    ],
    ids=[
        "config",
        "format_version",
        "counters",
        "obs_dim",
        "obs_shape",
        "action_low",
        "actor_entry",
        "optimizer_missing",
        "buffer_pos",
        "buffer_rows",
        "wandb_run_id",
        "rng_string",
        "rng_size",
        "actor_shape",
        "huge_hidden_size",
        "nan_weight",
        "adam_moment_shape",
        "adam_lr",
        "huge_buffer_size",
    ],
)
def test_a_crafted_payload_is_one_line_everywhere(base, tmp_path, edit, phrase):
    state = load_checkpoint(base, mmap=False)
    edit(state)
    path = tmp_path / "run" / "checkpoints" / base.name
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    results = _read_every_way(path, tmp_path / "run")
    errors = [r for r in results.values() if isinstance(r, str)]
    if phrase is None:
        assert not errors
    else:
        assert errors and any(str(path) in r for r in errors)
        assert any(re.search(phrase, r) for r in errors), errors


# -------------------------------------------------------------------------- property tests
@dataclass(repr=False)  # hypothesis prints the arguments of a failing case: not 36 kB of them
class _Fuzz:
    data: bytes
    state: dict
    path: Path
    run_dir: Path


@pytest.fixture(scope="module")
def fuzz(base, tmp_path_factory) -> _Fuzz:
    """The base file's bytes and payload, and one path the mutated files are written to (a
    run directory's only checkpoint, so a resume has nothing to fall back to)."""
    run_dir = tmp_path_factory.mktemp("fuzz")
    path = run_dir / "checkpoints" / base.name
    path.parent.mkdir()
    return _Fuzz(base.read_bytes(), load_checkpoint(base, mmap=False), path, run_dir)


_AT = st.integers(0, 2**31)  # a position, modulo the file's length
_MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), _AT, st.integers(0, 7)),
        st.tuples(st.just("truncate"), _AT),
        st.tuples(st.just("zero"), _AT, st.integers(1, 1024)),
        st.tuples(st.just("splice"), _AT, _AT, st.integers(1, 1024)),  # from, to, length
    ),
    min_size=1,
    max_size=3,
)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, at, *rest in mutations:
        if not buf:
            break
        at %= len(buf)
        if kind == "flip":
            buf[at] ^= 1 << rest[0]
        elif kind == "truncate":
            del buf[at:]
        elif kind == "zero":
            buf[at : at + rest[0]] = bytes(len(buf[at : at + rest[0]]))
        else:  # a block copied over another place in the file
            block = bytes(buf[at : at + rest[1]])
            to = rest[0] % len(buf)
            buf[to : to + len(block)] = block
    return bytes(buf)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=_MUTATIONS)
def test_a_damaged_file_loads_correctly_or_fails_in_one_line(fuzz, mutations):
    """A real checkpoint with bits flipped, its tail cut, blocks zeroed or copied over others."""
    fuzz.path.write_bytes(_mutate(fuzz.data, mutations))
    results = _read_every_way(fuzz.path, fuzz.run_dir)
    if not isinstance(results["policy"], str):  # loaded: then what it loaded is right
        actor = results["policy"].agent.actor.state_dict()
        assert _same_tensors(actor, fuzz.state["agent"]["actor"])
    if not isinstance(results["restore"], str):
        _, buffer = results["restore"]
        assert torch.equal(buffer.obs[: len(buffer)], fuzz.state["buffer"]["obs"])


_JUNK: dict[str, Callable[[Any], Any]] = {
    "none": lambda v: None,
    "negative": lambda v: -1,
    "huge": lambda v: 2**40,
    "float": lambda v: 0.5,
    "nan": lambda v: math.nan,
    "string": lambda v: TRAP,
    "list": lambda v: [1, "a"],
    "dict": lambda v: {"a": 1},
    "small tensor": lambda v: torch.zeros(2),
    "nan tensor": lambda v: torch.full(v.shape if isinstance(v, torch.Tensor) else (), math.nan),
    "int tensor": lambda v: v.long() if isinstance(v, torch.Tensor) else v,
    "wider tensor": lambda v: (
        torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if isinstance(v, torch.Tensor) and v.ndim else v
    ),
}


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a payload, into its dictionaries and lists (not into tensors)."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    return [p for k, v in items for p in [(*prefix, k), *_paths(v, (*prefix, k))]]


@pytest.mark.slow  # ~0.2 s an example: most go through every reader
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_crafted_payload_loads_or_fails_in_one_line(fuzz, data):
    """Well-formed files (valid CRCs) whose payload has one part replaced by junk or removed."""
    state = _copy(fuzz.state)
    *parent_path, key = data.draw(st.sampled_from(_paths(state)), label="path")
    parent = state
    for k in parent_path:
        parent = parent[k]
    kind = data.draw(st.sampled_from(["delete", *_JUNK]), label="kind")
    if kind == "delete":
        del parent[key]
    else:
        parent[key] = _JUNK[kind](parent[key])
    torch.save(state, fuzz.path)
    _read_every_way(fuzz.path, fuzz.run_dir)


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    return value
