"""Time of one SAC gradient update alone: no env, no buffer, no logging.

Builds this project's agent for HalfCheetah's sizes (obs 17, act 6; batch 256, 2x256 by
default), runs `--warmup` updates (compilation happens there), then times `--repeats` blocks
of `--updates` updates on random batches already on the device, and prints the median and
spread of the time per update. On CUDA each block ends with a synchronize, so the time is the
device's, not the launch queue's.

    python experiments/bench_update.py                          # CPU, eager
    python experiments/bench_update.py --device cuda --cudagraphs
    python experiments/bench_update.py --agent critic_norm=layer critic_dropout=0.01   # DroQ's

It is the update's share of `bench_speed.py`'s steps/s, without the env's noise: use it to
compare two versions of the update, and `bench_speed.py` for claims against Stable-Baselines3.

    python experiments/bench_update.py --vs /path/to/other/checkout --repeats 60 --updates 25

times this checkout's update (A) against another checkout's (B) in one process: their blocks
alternate, each pair in turn order, and it prints the median of the paired A/B ratios. On a
machine whose speed drifts between runs (the 2-core one does, by 20-30%) that is much steadier
than comparing two processes.

    python experiments/bench_update.py --compile --per-call 4 1 --repeats 30 --updates 24

times updates made K at a time (`SAC.update_many`, updates_per_call=K: with compile=true one
graph unrolling K) against one at a time, paired the same way (A = the first K). A single
`--per-call K` times only that; with `--vs`, both checkouts at that K.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from sac.agent import SAC, Batch
from sac.compiled import make_updater
from sac.config import AgentConfig


def random_batches(n: int, size: int, obs: int, act: int, device: str) -> list[Batch]:
    """`n` batches of random transitions (1% terminal), on `device`."""
    g = torch.Generator().manual_seed(0)
    return [
        Batch(
            torch.randn(size, obs, generator=g).to(device),
            (torch.rand(size, act, generator=g) * 2 - 1).to(device),
            torch.randn(size, generator=g).to(device),
            torch.randn(size, obs, generator=g).to(device),
            (torch.rand(size, generator=g) < 0.01).float().to(device),
        )
        for _ in range(n)
    ]


def load_checkout(root: str) -> tuple[Any, Any, Any, Any]:
    """SAC, Batch, AgentConfig and make_updater (None in checkouts from before sac.compiled)
    of the checkout at `root`, imported beside this one's.

    Its modules are imported now, then this checkout's are put back: a module the other
    checkout imports only later, inside a function, would be this checkout's.
    """

    def ours() -> dict[str, Any]:
        return {k: m for k, m in sys.modules.items() if k == "sac" or k.startswith("sac.")}

    saved = ours()
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, root)
    try:
        agent, config = importlib.import_module("sac.agent"), importlib.import_module("sac.config")
        try:
            updater_fn = importlib.import_module("sac.compiled").make_updater
        except ModuleNotFoundError:  # compile flags were the agent's own then
            updater_fn = None
    finally:
        sys.path.remove(root)
        for name in ours():
            del sys.modules[name]
        sys.modules.update(saved)
    # The import falls back to the installed package where `root` has none: refuse that.
    if Path(agent.__file__).resolve().parent != (Path(root) / "sac").resolve():
        raise SystemExit(f"error: --vs {root}: no sac package there (found {agent.__file__})")
    return agent.SAC, agent.Batch, config.AgentConfig, updater_fn


def build(args: argparse.Namespace, sac_cls: Any, config_cls: Any, updater_fn: Any) -> Any:
    """What runs the updates of an agent for HalfCheetah's sizes (its Updater, or the agent in
    checkouts without one), seeded alike whatever checkout it comes from."""
    torch.manual_seed(0)
    cfg = config_cls(batch_size=args.batch_size, hidden_sizes=[args.hidden] * 2, **args.agent)
    flags = {"compile": True} if args.compile else {}
    if args.cudagraphs:
        flags["cudagraphs"] = True
    if updater_fn is None:
        return sac_cls(args.obs_dim, args.act_dim, cfg, args.device, **flags)
    return updater_fn(sac_cls(args.obs_dim, args.act_dim, cfg, args.device), **flags)


def updater(
    args: argparse.Namespace, agent: Any, batch_cls: Any, per_call: int
) -> Callable[[int], Any]:
    """`run(i)`: the agent's i-th call on random batches: one update, or `per_call` of them
    through update_many on stacked batches."""
    batches = random_batches(8, args.batch_size, args.obs_dim, args.act_dim, args.device)
    if per_call == 1:
        own = [batch_cls(*b) for b in batches]
        return lambda i: agent.update(own[i % len(own)])
    if not hasattr(agent, "update_many"):
        raise SystemExit("--per-call above 1 needs SAC.update_many, which --vs's checkout lacks")
    groups = [[batches[(i + j) % len(batches)] for j in range(per_call)] for i in range(8)]
    stacked = [batch_cls(*(torch.stack(x) for x in zip(*group))) for group in groups]
    return lambda i: agent.update_many(stacked[i % len(stacked)])


def time_updates(args: argparse.Namespace, agents: list[tuple[Any, Any, int]]) -> list[list[float]]:
    """Seconds per update, one value per timed block, for each (agent, Batch type, updates
    per call); with two agents the blocks alternate and each round swaps who goes first."""
    runs = [updater(args, agent, batch_cls, k) for agent, batch_cls, k in agents]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for n, ((agent, _, k), run) in enumerate(zip(agents, runs)):
        for i in range(-(-args.warmup // k)):
            run(i)
        sync()
        if (args.compile or args.cudagraphs) and not agent.compiled:
            which = f" for --vs {args.vs}" if n and args.vs else ""
            print(f"warning: compilation failed{which}, its timings below are eager")
    blocks: list[list[float]] = [[] for _ in agents]
    for r in range(args.repeats):
        order = list(range(len(agents)))
        for n in order[r % 2 :] + order[: r % 2]:
            k, run = agents[n][2], runs[n]
            calls = max(1, args.updates // k)
            t0 = time.perf_counter()
            for i in range(calls):
                run(i)
            sync()
            blocks[n].append((time.perf_counter() - t0) / (calls * k))
    return blocks


def summary(label: str, blocks: list[float], args: argparse.Namespace) -> str:
    ms = [1e3 * b for b in blocks]
    return (
        f"{label}: median {statistics.median(ms):.3f} ms (min {min(ms):.3f}, max {max(ms):.3f};"
        f" {args.repeats} blocks of {args.updates})"
    )


def agent_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE of AgentConfig, the value read as YAML (as Hydra reads overrides: true,
    0.01, [64, 64], layer)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. critic_norm=layer")
    if key in ("batch_size", "hidden_sizes"):
        raise argparse.ArgumentTypeError(f"{key}: set it with --batch-size or --hidden")
    if key not in {f.name for f in dataclasses.fields(AgentConfig)}:
        raise argparse.ArgumentTypeError(f"{key}: not an AgentConfig option")
    return key, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="compile=true")
    p.add_argument("--cudagraphs", action="store_true", help="cudagraphs=true (CUDA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256, help="width of both hidden layers")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--warmup", type=int, default=50, help="untimed updates (compile here)")
    p.add_argument("--updates", type=int, default=100, help="updates per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks")
    p.add_argument("--vs", metavar="CHECKOUT", help="also time this other checkout's update")
    p.add_argument(
        "--agent",
        nargs="*",
        type=agent_option,
        default=[],
        metavar="KEY=VALUE",
        help="AgentConfig options for both checkouts, e.g. critic_norm=layer critic_dropout=0.01",
    )
    p.add_argument(
        "--per-call",
        nargs="+",
        type=int,
        default=[1],
        metavar="K",
        help="updates per call (update_many); two values: time both, paired (A = the first)",
    )
    args = p.parse_args(argv)
    args.agent = dict(args.agent)
    if len(args.per_call) > 2 or min(args.per_call) < 1:
        p.error("--per-call takes one or two values, each >= 1")
    if len(args.per_call) == 2 and args.vs:
        p.error("--per-call with two values compares this checkout with itself: drop --vs")
    per_call = args.per_call[0]
    agents = [(build(args, SAC, AgentConfig, make_updater), Batch, per_call)]
    if args.vs:
        other_sac, other_batch, other_config, other_updater = load_checkout(args.vs)
        other = build(args, other_sac, other_config, other_updater)
        agents.append((other, other_batch, per_call))
    elif len(args.per_call) == 2:
        agents.append((build(args, SAC, AgentConfig, make_updater), Batch, args.per_call[1]))
    blocks = time_updates(args, agents)
    print(
        f"{summary(f'update ({per_call} per call)', blocks[0], args)} on {args.device},"
        f" batch {args.batch_size},"
        f" 2x{args.hidden}, compile={args.compile}, cudagraphs={args.cudagraphs},"
        f" agent options {args.agent or 'none'},"
        f" torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if len(agents) == 2:
        other = f"of {args.vs}" if args.vs else f"({agents[1][2]} per call)"
        print(summary(f"update {other}", blocks[1], args))
        ratios = [a / b for a, b in zip(*blocks)]
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        a = "this checkout" if args.vs else f"{per_call} per call"
        print(
            f"A/B: median paired ratio {statistics.median(ratios):.3f}"
            f" (quartiles {low:.3f}-{high:.3f}, {len(ratios)} pairs; A = {a})"
        )


if __name__ == "__main__":
    main()
