"""End to end through the real console scripts, and every bad input the user can give them."""

import json

import imageio.v3 as iio
import pytest
import torch
from conftest import run_cli

pytestmark = pytest.mark.slow

TINY = [
    "total_steps=400",
    "agent.warmup_steps=200",
    "eval_every=200",
    "eval_episodes=1",
    "checkpoint_every=200",
    "agent.batch_size=32",
    "agent.hidden_sizes=[32,32]",
    "device=cpu",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short real `sac-train` run shared by the tests that need a checkpoint."""
    cwd = tmp_path_factory.mktemp("cli")
    proc = run_cli(["sac-train", *TINY, "seed=1"], cwd)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (cwd / "runs").iterdir()
    return cwd, run_dir, proc


def test_train_writes_run_directory(trained_run):
    _, run_dir, proc = trained_run
    assert run_dir.name.startswith("Pendulum-v1_seed1_")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file()
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.pt", "step_0000000200.pt", "step_0000000400.pt"]
    out = proc.stdout + proc.stderr  # Hydra sends log lines to stdout
    assert "step 400/400" in out and "sps" in out and "ETA" in out and "checkpoint:" in out


def test_eval_on_run_directory_prints_and_writes_json(trained_run):
    cwd, run_dir, _ = trained_run
    proc = run_cli(["sac-eval", f"checkpoint={run_dir}", "episodes=2", "device=cpu"], cwd)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["episodes"] == 2 and summary["checkpoint_steps"] == 400
    assert summary["min"] <= summary["mean"] <= summary["max"] < 0  # Pendulum rewards are <= 0
    assert summary["checkpoint"].endswith("step_0000000400.pt")
    written = json.loads((run_dir / "eval" / "step_0000000400" / "eval.json").read_text())
    assert written == summary


def test_eval_is_deterministic_and_seeded(trained_run):
    cwd, run_dir, _ = trained_run
    ckpt = run_dir / "checkpoints" / "step_0000000200.pt"
    outs = [
        json.loads(
            run_cli(["sac-eval", f"checkpoint={ckpt}", "episodes=1", f"output_dir={d}"], cwd).stdout
        )
        for d in ("a", "b")
    ]
    assert outs[0]["returns"] == outs[1]["returns"] and outs[0]["checkpoint_steps"] == 200
    stochastic = [
        json.loads(
            run_cli(
                [
                    "sac-eval",
                    f"checkpoint={ckpt}",
                    "episodes=1",
                    "deterministic=false",
                    "seed=3",
                    f"output_dir={d}",
                ],
                cwd,
            ).stdout
        )["returns"]
        for d in ("c", "d")
    ]
    assert stochastic[0] == stochastic[1]  # the policy noise is seeded too


def test_eval_seed_and_noise_change_the_episodes(trained_run, tmp_path):
    """In-process (no console script): seed=3 and seed=4 start other episodes, and
    deterministic=false samples actions, so each gives other returns."""
    from hydra import compose, initialize_config_dir

    from sac.config import config_dir
    from sac.evaluate import evaluate

    _, run_dir, _ = trained_run

    def returns(*overrides):
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            cfg = compose(
                "eval",
                [
                    f"checkpoint={run_dir}",
                    "episodes=2",
                    "device=cpu",
                    f"output_dir={tmp_path}",
                    *overrides,
                ],
            )
        return evaluate(cfg)["returns"]

    deterministic = returns("seed=3")
    assert returns("seed=3") == deterministic
    assert returns("seed=4") != deterministic
    stochastic = returns("seed=3", "deterministic=false")
    assert stochastic != deterministic
    assert returns("seed=3", "deterministic=false") == stochastic


def test_eval_video_writes_mp4(trained_run):
    cwd, run_dir, _ = trained_run
    proc = run_cli(
        ["sac-eval", f"checkpoint={run_dir}", "episodes=1", "video=true", "output_dir=vid"], cwd
    )
    assert proc.returncode == 0, proc.stderr
    video = cwd / "vid" / "episode_000.mp4"
    assert video.is_file() and video.stat().st_size > 10_000
    assert json.loads(proc.stdout)["videos"] == ["vid/episode_000.mp4"]


def _assert_clean_failure(proc, *phrases):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["env.id=CartPole-v1"], ["continuous Box action space"]),
        (["env.id=NoSuchEnv-v0"], ["unknown Gymnasium env id 'NoSuchEnv-v0'"]),
        (["no_such_key=1"], ["no_such_key"]),
        (["agent.lr=0.1"], ["lr"]),
        (["seed=abc"], ["seed", "abc"]),
        (["agent.batch_size=0"], ["agent.batch_size must be > 0"]),
        (["agent.tau=-0.1"], ["agent.tau must be in (0, 1]"]),
        (["hydra.run.dir=/proc/sac-test/run"], ["cannot write to hydra.run.dir=/proc/sac-test"]),
        (["resume=no/such/run"], ["resume=no/such/run: no such checkpoint or run directory"]),
    ],
)
def test_train_bad_input(tmp_path, args, phrases):
    _assert_clean_failure(run_cli(["sac-train", *args], tmp_path), *phrases)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without GPU")
def test_train_cuda_without_gpu(tmp_path):
    proc = run_cli(["sac-train", "device=cuda"], tmp_path)
    _assert_clean_failure(proc, "sac-train: error: device=cuda but no CUDA GPU")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_eval_bad_input(tmp_path):
    _assert_clean_failure(run_cli(["sac-eval"], tmp_path), "checkpoint=PATH")
    _assert_clean_failure(
        run_cli(["sac-eval", "checkpoint=missing.pt"], tmp_path), "does not exist"
    )
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    proc = run_cli(["sac-eval", "checkpoint=notes.pt"], tmp_path)
    _assert_clean_failure(proc, "not a readable sac checkpoint")
    assert len(proc.stderr.strip().splitlines()) == 1
    _assert_clean_failure(
        run_cli(["sac-eval", "checkpoint=x", "episodes=lots"], tmp_path), "episodes"
    )


def test_mujoco_train_and_headless_video(tmp_path):
    """A MuJoCo task end to end, with an EGL-rendered video (MUJOCO_GL=egl, no screen)."""
    proc = run_cli(["sac-train", "env=inverted_pendulum", *TINY, "hydra.run.dir=ip"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(["sac-eval", "checkpoint=ip", "episodes=1", "video=true"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["env"] == "InvertedPendulum-v5" and summary["max"] >= 1
    frames = iio.imread(tmp_path / summary["videos"][0])
    assert frames.shape[1:] == (480, 480, 3) and len(frames) == summary["mean_length"] + 1
    assert frames.max() > 100  # something was drawn, not a black frame
