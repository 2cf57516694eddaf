"""compile=true and cudagraphs=true give the eager update's numbers, on CPU and (where there is
one) on a CUDA GPU. On CPU, cudagraphs=true is plain compilation (Inductor skips CUDA graphs for
CPU tensors): the test there checks the plumbing; the CUDA graphs themselves run only on a GPU."""

import contextlib
import copy

import pytest
import torch
import torch._inductor.config as inductor_config
from conftest import assert_recorded_as_cuda_graphs, compile_with
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.utils import counters
from torch._guards import TracingContext
from torch._inductor.utils import get_first_incompatible_cudagraph_node

from sac.agent import METRIC_NAMES, SAC, Batch, Metrics
from sac.compiled import Updater, make_updater
from sac.config import AgentConfig

OBS, ACT = 5, 2

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


def _batch(g: torch.Generator, device: str, n: int = 64) -> Batch:
    return Batch(
        torch.randn(n, OBS, generator=g).to(device),
        (torch.rand(n, ACT, generator=g) * 2 - 1).to(device),
        torch.randn(n, generator=g).to(device),
        torch.randn(n, OBS, generator=g).to(device),
        (torch.rand(n, generator=g) < 0.1).float().to(device),
    )


# Options the one-graph update (compile=true, cudagraphs=true) must handle besides the plain
# agent: DroQ's layer norm and dropout, REDQ's random subset and mean over critics, no target
# networks with a fixed temperature, gSDE's actor, SimbaV2's. (Batch norm configs compile the
# losses one by one.)
OPTIONS = {
    "droq-redq": {
        "critic_norm": "layer",
        "critic_dropout": 0.1,
        "num_critics": 3,
        "target_subset": 2,
        "actor_q": "mean",
    },
    "no-targets": {"target_networks": False, "autotune_alpha": False, "alpha": 0.1},
    "gsde": {"gsde": True},
    # SimbaV2: hyperspherical networks projected after each Adam step, categorical critics,
    # rewards scaled, learning rates decayed (to their end within the test's updates)
    "simbav2": {
        "network": "simbav2",
        "critic_bins": 11,
        "reward_norm": True,
        "lr_end": 1e-4,
        "lr_decay_steps": 5,
    },
}
BATCH_NORM = {"critic_norm": "batch", "actor_batch_norm": True, "target_networks": False}


def _vec(m: Metrics) -> torch.Tensor:
    return torch.stack([m[name] for name in METRIC_NAMES])


def _finite(m: Metrics) -> bool:
    return bool(torch.isfinite(_vec(m)).all())


def make_batch(n: int = 64) -> Batch:
    return _batch(torch.Generator().manual_seed(0), "cpu", n)


def make_agent(**overrides) -> SAC:
    torch.manual_seed(0)
    return SAC(OBS, ACT, AgentConfig(hidden_sizes=[32, 32], **overrides))


def _twins(device: str, flag: str, **options) -> tuple[SAC, Updater]:
    """An eager agent and the updater of a `flag`=true one with its weights. A target update
    every other step and a delayed actor: both Python branches get taken."""
    cfg = AgentConfig(
        hidden_sizes=[32, 32], target_update_interval=2, actor_update_interval=2, **options
    )
    torch._dynamo.reset()  # (compiled code of earlier tests' agents counts to a recompile limit)
    counters.clear()
    torch.manual_seed(0)
    eager = SAC(OBS, ACT, cfg, device)
    # a reward scale other than 1 (loaded into `fast` with the rest)
    eager.update_reward_norm(torch.tensor([3.0, -1.0]), torch.tensor([False, False]))
    fast = SAC(OBS, ACT, cfg, device)
    fast.load_state_dict(eager.state_dict())
    return eager, make_updater(fast, **{flag: True})


def _assert_same_state(fast: SAC, eager: SAC, tol: dict[str, float]) -> None:
    """Networks, temperature and the optimizers' state (compile=true steps them with its own
    Adam) match."""
    nets = [(fast.actor, eager.actor), (fast.critic, eager.critic)]
    if eager.cfg.target_networks:
        nets.append((fast.critic_target, eager.critic_target))
    for mine, theirs in nets:
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(p, q, **tol)
    torch.testing.assert_close(fast.log_alpha, eager.log_alpha, **tol)
    if eager.cfg.autotune_alpha:
        assert not torch.equal(fast.log_alpha, torch.zeros_like(fast.log_alpha))  # it moved
    for mine, theirs in (
        (fast.critic_optim, eager.critic_optim),
        (fast.actor_optim, eager.actor_optim),
        (fast.alpha_optim, eager.alpha_optim),
    ):
        torch.testing.assert_close(mine.state_dict(), theirs.state_dict(), **tol)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "options"),
    [
        pytest.param("compile", {}, id="compile-plain"),
        pytest.param("cudagraphs", {}, id="cudagraphs-plain"),
        *(pytest.param("compile", o, id=f"compile-{k}") for k, o in OPTIONS.items()),
        *(pytest.param("cudagraphs", o, id=f"cudagraphs-{k}") for k, o in OPTIONS.items()),
        # Batch norm: the two losses compiled one by one (mode "reduce-overhead" for CUDA graphs)
        pytest.param("cudagraphs", BATCH_NORM, id="cudagraphs-batch-norm"),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_update_matches_eager(device, flag, options):
    eager, fast = _twins(device, flag, **options)
    g = torch.Generator().manual_seed(1)
    metrics: dict[str, list[torch.Tensor]] = {"eager": [], "fast": []}
    # Inductor draws its own random numbers unless told to call eager's generator. The one
    # graph tells it so itself (a seed gives the same noise compiled or not); the per-loss
    # compilation of cudagraphs=true (batch norm) needs the patch to use the noise eager uses.
    patch = not fast.one_graph
    with inductor_config.patch(fallback_random=True) if patch else contextlib.nullcontext():
        for step in range(8):
            batch = _batch(g, device)
            for name, agent in (("eager", eager), ("fast", fast)):
                torch.manual_seed(100 + step)  # the same policy noise for both
                metrics[name].append(_vec(agent.update(batch)))

    assert fast.compiled  # it did not fall back to eager
    assert fast.one_graph == (options is not BATCH_NORM)
    if flag == "cudagraphs" and device == "cuda":
        assert_recorded_as_cuda_graphs()
    tol = {"rtol": 1e-4, "atol": 1e-5}
    # Every update's metrics, read only now: with CUDA graphs, a tensor that aliased a graph's
    # output would have been overwritten by the later updates (or refuse to be read).
    torch.testing.assert_close(torch.stack(metrics["fast"]), torch.stack(metrics["eager"]), **tol)
    _assert_same_state(fast.agent, eager, tol)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, *OPTIONS.values()], ids=["plain", *OPTIONS])
def test_compile_true_captures_the_whole_update_in_one_graph(monkeypatch, options):
    # Traced only (backend "eager": no Inductor), with the agent's fullgraph=True: a graph
    # break anywhere in the update raises, and the agent would fall back to eager.
    compiled = compile_with(monkeypatch, "eager")
    counters.clear()
    cfg = AgentConfig(hidden_sizes=[16], **options)
    agent = make_updater(SAC(OBS, ACT, cfg), compile=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(_batch(g, "cpu"))
    assert compiled == ["_update"]
    assert agent.one_graph and agent.compiled and agent.agent.num_updates == 3
    assert counters["stats"]["unique_graphs"] == 1


def test_compiled_and_eager_agents_resume_from_each_others_checkpoints(monkeypatch):
    """compile=true steps the optimizers with its own Adam on their own state: a checkpoint it
    wrote resumes in an eager run, and an eager checkpoint in a compiled one, identically."""
    compile_with(monkeypatch, "eager")
    cfg = AgentConfig(hidden_sizes=[16])
    g = torch.Generator().manual_seed(0)
    batches = [_batch(g, "cpu") for _ in range(4)]
    torch.manual_seed(0)
    first = SAC(OBS, ACT, cfg)
    first_updater = make_updater(first, compile=True)
    for b in batches[:2]:
        first_updater.update(b)
    # Deep copies, as a checkpoint read from disk is: a state_dict shares the optimizers'
    # state tensors, which loading keeps, so the agents would step the same moments.
    state = copy.deepcopy(first.state_dict())
    eager, compiled = SAC(OBS, ACT, cfg), SAC(OBS, ACT, cfg)
    compiled_updater = make_updater(compiled, compile=True)
    eager.load_state_dict(copy.deepcopy(state))
    compiled_updater.update(batches[0])  # its Adam state exists now; loading must replace it
    compiled.load_state_dict(copy.deepcopy(eager.state_dict()))
    for step, b in enumerate(batches[2:]):
        for update in (first_updater.update, eager.update, compiled_updater.update):
            torch.manual_seed(step)
            update(b)
    for agent in (eager, compiled):
        assert agent.num_updates == first.num_updates == 4
        for p, q in zip(agent.critic.parameters(), first.critic.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        for p, q in zip(agent.actor.parameters(), first.actor.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            agent.critic_optim.state_dict(), first.critic_optim.state_dict(), rtol=1e-5, atol=1e-6
        )


@pytest.mark.slow
@pytest.mark.parametrize("per_call", [1, 2], ids=["update", "update_many"])
@pytest.mark.parametrize("options", [{}, *OPTIONS.values()], ids=["plain", *OPTIONS])
def test_cudagraphs_true_graph_is_one_cuda_graph_trees_can_record(monkeypatch, options, per_call):
    """CUDA graph trees record a graph only if every input it writes in place is static (the
    same memory at every call), no input is a CPU tensor and no op is one they cannot capture
    (a host sync, a data-dependent shape): otherwise Inductor runs it without CUDA graphs, or
    in pieces, with a log line and no error. This checks, on CPU, what it can of that in the
    graph Inductor is given: the inputs that AOTAutograd finds mutated (parameters, Adam's
    moments and steps, log alpha, the actor's metrics) are among those marked static; no
    Python float became an input (0-d float64: on CUDA a CPU tensor), also for a second agent
    with other floats in the same process; and no op is incompatible. (The ops checked are the
    CPU variant's: on CUDA the ReLU and dropout differ, see networks.py.) The same for
    update_many's graph of K updates."""
    found = []

    def inspect(gm, example_inputs):
        meta = TracingContext.get().fw_metadata
        mutated = {i for i, info in enumerate(meta.input_info) if info.mutates_data}
        floats = [
            t for t in example_inputs if isinstance(t, torch.Tensor) and t.dtype == torch.float64
        ]
        found.append((mutated, set(meta.static_input_indices), floats))
        assert get_first_incompatible_cudagraph_node(gm) is None
        return gm

    compile_with(monkeypatch, aot_autograd(fw_compiler=inspect))
    # The second agent's target entropy (-act_dim) differs from the first's.
    for act in (ACT, ACT - 1):
        cfg = AgentConfig(hidden_sizes=[16], **options)
        agent = make_updater(SAC(OBS, act, cfg), cudagraphs=True)
        g = torch.Generator().manual_seed(0)
        for _ in range(2):
            batches = [_batch(g, "cpu") for _ in range(per_call)]
            batches = [b._replace(action=b.action[:, :act]) for b in batches]
            if per_call == 1:
                agent.update(batches[0])
            else:  # update_many's graph, the same checks
                agent.update_many(_stack(batches))
        assert agent.one_graph and agent.compiled
    assert len(found) == 2  # one graph for each agent
    nets = (agent.agent.critic, agent.agent.actor)
    n_params = sum(1 for net in nets for _ in net.parameters())
    for mutated, static, floats in found:
        # every parameter, its two moments and its step at least
        assert len(mutated) >= 4 * n_params
        assert mutated <= static, f"mutated inputs not marked static: {sorted(mutated - static)}"
        assert not floats


def _stack(batches: list[Batch]) -> Batch:
    return Batch(*(torch.stack(x) for x in zip(*batches)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("device", "flag"),
    [
        ("cpu", "compile"),
        *(pytest.param(*p, marks=DEVICES[1].marks) for p in [("cuda", "compile")]),
        *(pytest.param(*p, marks=DEVICES[1].marks) for p in [("cuda", "cudagraphs")]),
    ],
)
def test_update_many_unrolled_matches_eager_updates_one_by_one(device, flag):
    """update_many's graph (K updates unrolled into one) gives the numbers of K eager updates
    on the same batches, drawing the same policy noise in the same order. K = 2 with a delayed
    actor and target every other update: each call unrolls an update without and one with
    the actor step and the Polyak update."""
    eager, fast = _twins(device, flag)
    g = torch.Generator().manual_seed(1)
    metrics: dict[str, list[torch.Tensor]] = {"eager": [], "fast": []}
    for group in range(4):
        batches = [_batch(g, device) for _ in range(2)]
        torch.manual_seed(100 + group)
        metrics["eager"] += [_vec(eager.update(b)) for b in batches]
        torch.manual_seed(100 + group)
        metrics["fast"].append(_vec(fast.update_many(_stack(batches))).T)

    assert fast.compiled and fast.one_graph  # no fallback
    assert fast.agent.num_updates == eager.num_updates == 8
    assert set(fast._probation) == {((False, False), (True, True))}  # one graph
    if flag == "cudagraphs":
        assert_recorded_as_cuda_graphs()
    tol = {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(torch.cat(metrics["fast"]), torch.stack(metrics["eager"]), **tol)
    _assert_same_state(fast.agent, eager, tol)


@pytest.mark.slow
def test_update_many_is_one_graph_for_each_pattern_of_steps(monkeypatch):
    """Traced only: update_many compiles one more graph (fullgraph: a break raises) for each
    pattern of actor steps and Polyak updates its K updates take: with K = 3 and both every
    other update, calls alternate between two. Single updates still take their own graph."""
    compiled = compile_with(monkeypatch, "eager")
    counters.clear()
    g = torch.Generator().manual_seed(0)
    batches = _stack([_batch(g, "cpu") for _ in range(3)])
    cfg = AgentConfig(hidden_sizes=[16], target_update_interval=2, actor_update_interval=2)
    agent = make_updater(SAC(OBS, ACT, cfg), compile=True)
    for _ in range(3):
        assert _vec(agent.update_many(batches)).shape == (7, 3)
    agent.update(Batch(*(x[0] for x in batches)))
    assert compiled == ["_update", "_update_many"]
    assert counters["stats"]["unique_graphs"] == 3
    no, yes = (False, False), (True, True)
    assert set(agent._probation) == {(no, yes, no), (yes, no, yes), yes}  # the 10th: both
    assert agent.one_graph and agent.agent.num_updates == 10


@pytest.mark.parametrize(
    ("options", "flags"), [({}, {}), (BATCH_NORM, {"compile": True})], ids=["eager", "batch-norm"]
)
def test_update_many_without_the_one_graph_calls_update_k_times(monkeypatch, options, flags):
    compile_with(monkeypatch, "eager")
    g = torch.Generator().manual_seed(0)
    batches = [_batch(g, "cpu") for _ in range(3)]
    agent = make_updater(SAC(OBS, ACT, AgentConfig(hidden_sizes=[16], **options)), **flags)
    seen = []
    update = agent.update
    monkeypatch.setattr(agent, "update", lambda b: seen.append(b) or update(b))
    assert _vec(agent.update_many(_stack(batches))).shape == (7, 3)
    assert len(seen) == 3 and agent.agent.num_updates == 3
    for mine, theirs in zip(seen, batches, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))


@pytest.mark.parametrize("flag", ["compile", "cudagraphs"])
def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog, flag):
    """A platform that cannot compile (no C++ compiler, unsupported backend) keeps training."""
    modes = []

    def broken_compile(fn, mode=None, **kwargs):
        modes.append(mode)

        def compiled(*args):
            raise RuntimeError("no working C++ compiler found\nlong details")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(0)
    agent = make_updater(SAC(OBS, ACT, AgentConfig(hidden_sizes=[16])), **{flag: True})
    # Both compile the whole update once (cudagraphs=true with Inductor's CUDA graph trees on).
    assert modes == [None]
    batch = make_batch(32)
    with caplog.at_level("WARNING", logger="sac"):
        first = agent.update(batch)
        agent.update(batch)
    warnings = [r.getMessage() for r in caplog.records if f"{flag}=true" in r.getMessage()]
    assert len(warnings) == 1 and "no working C++ compiler found" in warnings[0]
    assert "long details" not in warnings[0]  # one line
    assert _finite(first) and agent.agent.num_updates == 2
    assert not agent.compiled and not agent.cudagraphs


def test_update_many_falls_back_to_eager_updates_when_its_graph_fails(monkeypatch, caplog):
    """A failure compiling update_many's graph (its K updates unrolled) warns once and redoes
    the K updates eagerly; the one-update graph compiled fine, and training goes on."""

    def compile_failing_many(fn, mode=None, **kwargs):
        def compiled(*args):
            if fn.__name__ == "_update_many":
                raise RuntimeError("out of memory compiling the unrolled graph")
            return fn(*args)

        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_many)
    torch.manual_seed(0)
    agent = make_updater(SAC(OBS, ACT, AgentConfig(hidden_sizes=[16])), compile=True)
    agent.update(make_batch(32))
    batches = [make_batch(32) for _ in range(3)]
    stacked = Batch(*(torch.stack(x) for x in zip(*batches)))
    with caplog.at_level("WARNING", logger="sac"):
        metrics = agent.update_many(stacked)
        agent.update_many(stacked)
    warnings = [r.getMessage() for r in caplog.records if "compile=true" in r.getMessage()]
    assert len(warnings) == 1 and "unrolled graph" in warnings[0]
    assert _vec(metrics).shape == (7, 3) and _finite(metrics)
    assert agent.agent.num_updates == 7 and not agent.one_graph


@pytest.mark.parametrize("failing", ["critic", "actor", "graph"])
def test_a_compile_failure_at_a_later_call_still_falls_back(monkeypatch, caplog, failing):
    """CUDA graphs are recorded after a warm-up call: a failure there must not stop the run.
    (The one graph of the update; with batch norm, the critic's or the actor's loss.)"""

    name = {"critic": "critic_loss", "actor": "actor_loss", "graph": "_update"}[failing]

    def compile_failing_at_call_3(fn, mode=None, **kwargs):
        calls = []

        def compiled(*args):
            calls.append(1)
            if len(calls) == 3 and fn.__name__ == name:
                raise RuntimeError("CUDA graph capture failed")
            return fn(*args)

        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_at_call_3)
    torch.manual_seed(0)
    norm = "none" if failing == "graph" else "batch"
    cfg = AgentConfig(hidden_sizes=[16], critic_norm=norm, target_networks=norm != "batch")
    agent = make_updater(SAC(OBS, ACT, cfg), cudagraphs=True)
    assert agent.one_graph == (failing == "graph")
    with caplog.at_level("WARNING", logger="sac"):
        for _ in range(5):
            metrics = agent.update(make_batch(32))
    warnings = [r.getMessage() for r in caplog.records if "cudagraphs=true" in r.getMessage()]
    assert len(warnings) == 1 and "CUDA graph capture failed" in warnings[0]
    assert _finite(metrics) and agent.agent.num_updates == 5
    assert not agent.compiled
    # The actor's loss is built with the critics frozen: after a failure there too, they must
    # be trainable again.
    assert all(p.requires_grad for p in agent.agent.critic.parameters())


def test_compile_true_guards_the_first_call_with_each_pair_of_flags(monkeypatch, caplog):
    """compile=true compiles a graph for each (actor step, Polyak update) pair at its first
    call: with a delayed actor that can be long after the first updates."""
    calls = []

    def compile_failing_at_first_actor_step(fn, mode=None, **kwargs):
        def compiled(batch, actor_metrics, do_actor, do_polyak):
            calls.append(do_actor)
            if do_actor:
                raise RuntimeError("compiling the actor's graph failed")
            return fn(batch, actor_metrics, do_actor, do_polyak)

        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_at_first_actor_step)
    agent = make_updater(make_agent(actor_update_interval=5), compile=True)
    assert agent.one_graph
    with caplog.at_level("WARNING", logger="sac"):
        for _ in range(6):
            metrics = agent.update(make_batch(32))
    assert calls == [False] * 4 + [True]  # the fifth update failed and was redone eagerly
    warnings = [r.getMessage() for r in caplog.records if "compile=true" in r.getMessage()]
    assert len(warnings) == 1 and "actor's graph failed" in warnings[0]
    assert _finite(metrics) and agent.agent.num_updates == 6 and not agent.one_graph
    assert agent.agent.actor_optim.state  # the actor did step, eagerly


class _FailingBackward(torch.autograd.Function):
    """Identity whose backward raises, as a compiled backward that cannot be built would."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compilation failed")


@pytest.mark.parametrize(
    ("flag", "overrides"),
    [
        ("cudagraphs", {"critic_norm": "batch", "target_networks": False}),
        ("compile", {"actor_batch_norm": True}),
    ],
)
def test_a_compile_failure_in_a_backward_pass_falls_back(monkeypatch, caplog, flag, overrides):
    """Where the losses are compiled one by one (configs with batch norm), the backward is
    compiled (and with cudagraphs recorded) at its first calls, outside the compiled forward:
    a failure there must not stop the run either."""

    def compile_with_failing_backward(fn, mode=None, **kwargs):
        def compiled(*args):
            loss, *rest = fn(*args)
            return (_FailingBackward.apply(loss), *rest)

        return compiled

    monkeypatch.setattr(torch, "compile", compile_with_failing_backward)
    torch.manual_seed(0)
    agent = make_updater(SAC(OBS, ACT, AgentConfig(hidden_sizes=[16], **overrides)), **{flag: True})
    assert not agent.one_graph
    before = [p.detach().clone() for p in agent.agent.critic.parameters()]
    with caplog.at_level("WARNING", logger="sac"):
        for _ in range(3):
            metrics = agent.update(make_batch(32))
    warnings = [r.getMessage() for r in caplog.records if f"{flag}=true" in r.getMessage()]
    assert len(warnings) == 1 and "backward compilation failed" in warnings[0]
    assert _finite(metrics) and agent.agent.num_updates == 3 and not agent.compiled
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.agent.critic.parameters()))


@pytest.mark.parametrize(
    "options",
    [{}, {"critic_norm": "batch", "actor_batch_norm": True, "target_networks": False}],
    ids=["one-graph", "batch-norm"],
)
def test_a_step_that_fails_after_running_is_not_applied_twice(monkeypatch, options):
    """Compiled code that fails after it ran (the one graph having applied Adam and Polyak, or
    a compiled loss having advanced batch-norm statistics) is undone before the eager redo:
    the agent ends exactly where an eager agent does."""

    def compile_failing_after_running(fn, mode=None, **kwargs):
        def compiled(*args):
            fn(*args)
            raise RuntimeError("failed after running")

        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_after_running)
    eager, fast = make_agent(**options), make_agent(**options)
    updater = make_updater(fast, compile=True)
    assert updater.one_graph == (not options)
    batches = [make_batch(32), _batch(torch.Generator().manual_seed(1), "cpu", 32)]
    for step, batch in enumerate(batches):
        torch.manual_seed(step)
        want = eager.update(batch)
        torch.manual_seed(step)
        got = updater.update(batch)
        torch.testing.assert_close(got, want)
    assert not updater.compiled and fast.num_updates == 2
    _assert_same_state(fast, eager, {"rtol": 0, "atol": 0})
    for mine, theirs in zip(fast.critic.buffers(), eager.critic.buffers(), strict=True):
        assert torch.equal(mine, theirs)  # batch-norm statistics advanced once per update
