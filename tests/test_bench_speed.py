"""experiments/bench_speed.py's report: a compiled row that ran eager says so in the table;
--sb3-train-freq adds an SB3 row on updates_per_call's schedule."""

import importlib.util
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "experiments" / "bench_speed.py"


def _module(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_speed", module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_a_row_whose_compilation_failed_is_marked_in_the_table(monkeypatch):
    bench = _module(monkeypatch)

    def measured(sps, fell_back=False):
        return bench.Measurement("sac", [], sps, 1000, 1000 / sps, 1000, 2, "cuda", 0.0, fell_back)

    rows = [
        bench.Row("sac", "base", "sac", [], [measured(100.0), measured(110.0)]),
        bench.Row(
            "sac",
            "base; compile=true",
            "sac",
            ["compile=true"],
            [measured(200.0), measured(105.0, fell_back=True)],
        ),
    ]
    lines = bench._table(rows).splitlines()
    assert "ran eager" not in lines[2]
    assert "compile=true **(compilation failed, ran eager: 1 of 2 repeats)**" in lines[3]


def test_sb3_train_freq_adds_an_sb3_row_on_that_schedule(monkeypatch):
    bench = _module(monkeypatch)
    monkeypatch.setattr(bench.metadata, "version", lambda dist: "2.9.2")
    args = bench.parse_args(
        ["--sb3-train-freq", "4", "--sac-variants", "compile=true updates_per_call=4"]
    )
    rows = bench._rows(args)
    assert [(r.impl, r.overrides) for r in rows] == [
        ("sac", []),
        ("sb3", []),
        ("sb3", ["train_freq=4"]),
        ("sac", ["compile=true", "updates_per_call=4"]),
    ]
    assert rows[2].settings.endswith("; train_freq=4, gradient_steps=4")

    def measured(impl, sps):
        return bench.Measurement(impl, [], sps, 1000, 1000 / sps, 1000, 2, "cpu", 0.0, False)

    for row, sps in zip(rows, (150.0, 50.0, 60.0, 200.0), strict=True):
        row.results.append(measured(row.impl, sps))
    ratios = [line.split(" | ")[5] for line in bench._table(rows).splitlines()[2:]]
    assert ratios == ["3.00", "1.00", "1.20", "4.00"]  # all against SB3's default row
    with pytest.raises(SystemExit):  # 3 does not divide the default 1000-step warm-up
        bench.parse_args(["--sb3-train-freq", "3"])


def test_variant_tokens_in_capitals_set_the_workers_environment(monkeypatch):
    module = _module(monkeypatch)
    assert module._is_env_var("OMP_NUM_THREADS=1") and module._is_env_var("PYTHONPATH=/a/b")
    for override in ("compile=true", "agent.actor_lr=1e-3", "env=hopper", "OMP_NUM_THREADS"):
        assert not module._is_env_var(override)
