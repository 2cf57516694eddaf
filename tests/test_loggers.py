"""The logger choice (`logger=`), TensorBoard for real, and evaluation videos during training."""

import csv

import imageio.v3 as iio
import pytest
from conftest import run_cli

from sac.errors import SACError
from sac.loggers import logger_names
from sac.trainer import Trainer

TINY = [
    "total_steps=300",
    "agent.warmup_steps=100",
    "eval_every=200",
    "eval_episodes=1",
    "checkpoint_every=0",
    "log_every=100",
    "device=cpu",
    "agent.batch_size=32",
    "agent.hidden_sizes=[16]",
]


@pytest.mark.parametrize(
    ("choice", "wandb_enabled", "names"),
    [
        (None, False, []),
        ("none", False, []),
        ("csv", False, []),  # always on: naming it changes nothing
        ("tensorboard", False, ["tensorboard"]),
        (["tensorboard", "wandb"], False, ["tensorboard", "wandb"]),
        (["wandb", "wandb", "csv"], False, ["wandb"]),
        (None, True, ["wandb"]),  # wandb.enabled=true: the alias
        ("wandb", True, ["wandb"]),
        (["tensorboard"], True, ["tensorboard", "wandb"]),
    ],
)
def test_logger_names(choice, wandb_enabled, names):
    assert logger_names(choice, wandb_enabled) == names


@pytest.mark.parametrize("choice", ["mlflow", ["tensorboard", "neptune"], 3])
def test_unknown_logger_names_the_choices(choice):
    with pytest.raises(SACError, match=r"unknown logger .*choose from csv, tensorboard, wandb"):
        logger_names(choice)


def test_logger_list_composes(make_cfg):
    cfg = make_cfg("logger=[tensorboard,wandb]", "eval_video=true")
    assert list(cfg.logger) == ["tensorboard", "wandb"] and cfg.eval_video
    assert make_cfg().logger is None and not make_cfg().eval_video


@pytest.mark.slow
def test_unknown_logger_is_one_line_through_the_cli(tmp_path):
    proc = run_cli(["sac-train", "logger=[tensorboard,mlflow]"], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        "sac-train: error: logger=[tensorboard,mlflow]: unknown logger 'mlflow'; choose from "
        "csv, tensorboard, wandb or a list such as logger=[tensorboard,wandb] (CSV is always "
        "written)"
    ]


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_scalars(make_cfg, tmp_path):
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    Trainer(make_cfg(*TINY, "logger=tensorboard"), tmp_path).train()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = ea_module.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"losses/critic", "train/alpha", "perf/sps", "eval/return_mean"} <= tags
    assert "train/episode_return" in tags
    assert [e.step for e in acc.Scalars("perf/sps")] == [100, 200, 300]
    assert [e.step for e in acc.Scalars("eval/return_mean")] == [200, 300]
    # the same numbers as the CSV (TensorBoard stores float32)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    csv_evals = [float(r["eval/return_mean"]) for r in rows if r["eval/return_mean"]]
    tb_evals = [e.value for e in acc.Scalars("eval/return_mean")]
    assert tb_evals == pytest.approx(csv_evals, rel=1e-6)


@pytest.mark.slow
def test_eval_video_records_the_first_episode_of_each_evaluation(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "eval_episodes=2", "eval_video=true")
    Trainer(cfg, tmp_path).train()
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert videos == ["eval_step200.mp4", "eval_step300.mp4"]  # periodic, then the final one
    path = tmp_path / "videos" / "eval_step200.mp4"
    assert path.stat().st_size > 10_000
    frames = iio.imread(path)
    assert len(frames) == 201  # one episode of Pendulum (200 steps) and its first frame
    assert frames[0].std() > 1  # not blank


def test_a_resumed_csv_drops_later_rows_and_its_time_goes_on_from_the_last_kept(tmp_path):
    """The time column counts the run's time across its processes: a resumed run's rows go on
    from the last row kept, not from 0 (the time between the processes left out)."""
    from sac.loggers import CSVLogger

    path = tmp_path / "metrics.csv"
    path.write_text("step,time,x\n100,50.0,1\n200,120.5,2\n300,200.0,3\n")
    logger = CSVLogger(path, ["x"], resume_step=200)
    logger.log(250, {"x": 4})
    logger.close()
    rows = list(csv.DictReader(path.open()))
    assert [(r["step"], r["x"]) for r in rows] == [("100", "1"), ("200", "2"), ("250", "4")]
    assert 120.5 <= float(rows[-1]["time"]) < 130
    fresh = CSVLogger(tmp_path / "fresh.csv", ["x"])
    fresh.log(1, {"x": 0})
    fresh.close()
    assert float(next(csv.DictReader((tmp_path / "fresh.csv").open()))["time"]) < 10
    # a damaged time is no time: the last readable one counts
    path.write_text("step,time,x\n100,50.0,1\n200,oops,2\n")
    logger = CSVLogger(path, ["x"], resume_step=200)
    logger.log(250, {"x": 4})
    logger.close()
    assert 50 <= float(list(csv.DictReader(path.open()))[-1]["time"]) < 60
