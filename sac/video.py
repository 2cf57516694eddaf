"""Videos of rendered episodes: MP4 files written frame by frame (`sac-eval video=true` and the
trainer's `eval_video=true`), and the environment headless rendering needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("sac")


def headless_rendering() -> None:
    """Render without a screen. Must run before MuJoCo is imported: it picks its OpenGL backend
    at import, and EGL renders off-screen. A user's own MUJOCO_GL (e.g. glfw on a desktop) wins.
    Classic-control envs render through pygame, which needs no display for rgb_array frames."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def episode_name(episode: int) -> str:
    return f"episode_{episode:03d}.mp4"


class VideoWriter:
    """One MP4 per episode, named `name(episode)` in `out_dir`, written frame by frame as the
    episode runs (frames never pile up in memory)."""

    def __init__(self, out_dir: Path, fps: int, name: Callable[[int], str] = episode_name) -> None:
        self.out_dir, self.fps, self.name = out_dir, fps, name
        self.paths: list[Path] = []
        self._episode, self._writer = -1, None

    def add(self, episode: int, frame: Any) -> None:
        import imageio.v2 as imageio

        if episode != self._episode:
            self.close()
            self._episode = episode
            self.paths.append(self.out_dir / self.name(episode))
            # macro_block_size=1 keeps the frame size as rendered (no resize warnings).
            self._writer = imageio.get_writer(
                self.paths[-1], fps=self.fps, codec="libx264", macro_block_size=1
            )
        self._writer.append_data(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EvalVideo:
    """One evaluation episode to an MP4. A video that cannot be written (disk full) is reported
    once and dropped: it must not stop the training run."""

    def __init__(self, path: Path, fps: int) -> None:
        self.path: Path | None = path
        self._writer = VideoWriter(path.parent, fps, name=lambda _: path.name)

    def add(self, episode: int, frame: Any) -> None:
        if self.path is None:
            return
        try:
            if episode == 0:
                self.path.parent.mkdir(exist_ok=True)
            self._writer.add(episode, frame)
        except OSError as e:
            log.error(
                "could not write the evaluation video %s (%s); training goes on", self.path, e
            )
            self.path = None
            self.close()

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as e:
            if self.path is not None:
                log.error("could not write the evaluation video %s (%s)", self.path, e)
            self.path = None
