"""No change may move the numbers unannounced: three short CPU runs (default Pendulum, CrossQ,
compile=true; 1k steps with 300 of warm-up, seed 0) end with the parameters recorded in
tests/data/reproduction.json (written by tests/record_reproduction.py)."""

import json

import pytest

from tests.record_reproduction import DATA, RUNS, run


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_run_reproduces_recorded_parameters(name):
    expected = json.loads(DATA.read_text())[name]
    got = run(name)
    assert got.keys() == expected.keys()
    for key, stats in expected.items():
        assert got[key]["shape"] == stats["shape"], key
        for stat in ("sum", "abs_sum", "first"):
            assert got[key][stat] == pytest.approx(stats[stat], rel=1e-4, abs=1e-5), (key, stat)
