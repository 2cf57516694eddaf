"""experiments/bench_speed.py's report: a compiled row that ran eager says so in the table."""

import importlib.util
import sys

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
