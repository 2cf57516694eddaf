# sac on a GPU (see the README's Docker section):
#   docker build -t sac . && mkdir -p runs
#   docker run --gpus all --init --user "$(id -u):$(id -g)" -v "$PWD/runs:/work/runs" sac \
#       env=halfcheetah device=cuda
# Everything after the image name is a Hydra override for sac-train. For evaluation:
# --entrypoint sac-eval.
FROM python:3.11-slim-bookworm

# Headless MuJoCo rendering (eval videos) goes through EGL: the NVIDIA runtime supplies the
# GPU driver's EGL when NVIDIA_DRIVER_CAPABILITIES includes "graphics"; Mesa's software EGL is
# the fallback on a machine without a GPU.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libgl1 libglvnd0 libgles2 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUJOCO_GL=egl \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

# PyTorch first, in its own layer: the PyPI build for Linux x86_64 is the CUDA one.
RUN pip install torch==2.13.0

WORKDIR /opt/sac
# Dependencies before the source so that code edits reuse the cached dependency layer.
COPY pyproject.toml README.md ./
RUN mkdir sac conf && touch sac/__init__.py && pip install ".[wandb]" && pip uninstall -y sac
COPY sac ./sac
COPY conf ./conf
RUN pip install --no-deps ".[wandb]"

RUN useradd --create-home --uid 1000 sac && mkdir -p /work && chmod 1777 /work
USER sac
WORKDIR /work
# Any uid may run the image (docker run --user "$(id -u):$(id -g)" to own what it writes):
# caches and W&B settings then go to a writable HOME.
ENV HOME=/tmp
ENTRYPOINT ["sac-train"]
