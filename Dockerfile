# sac on a GPU (see docs/docker.md):
#   docker build -t sac . && mkdir -p runs
#   docker run --gpus all --init --user "$(id -u):$(id -g)" -v "$PWD/runs:/work/runs" sac \
#       env=halfcheetah device=cuda
# Everything after the image name is a Hydra override for sac-train. For evaluation:
# --entrypoint sac-eval. `bash experiments/docker_check.sh` builds this image and runs both.
FROM python:3.11-slim-bookworm

# Headless MuJoCo rendering (eval videos) goes through EGL (MUJOCO_GL=egl, below): the NVIDIA
# runtime supplies the GPU driver's EGL when NVIDIA_DRIVER_CAPABILITIES includes "graphics";
# without a GPU, Mesa's EGL (libegl-mesa0, pulled in by libegl1) renders in software with the
# swrast driver of libgl1-mesa-dri. libopengl0: PyOpenGL looks for libOpenGL.so.0 first.
# No jemalloc or other allocator: it gave no speed gain here (experiments/results/speed.md),
# so the image keeps glibc's malloc, one thing fewer to go wrong.
# g++: torch.compile (compile=true, cudagraphs=true) writes C++ that Inductor builds on the CPU,
# and Triton builds its CUDA launchers with the C compiler; without one, compilation fails and
# training goes on uncompiled (one warning). experiments/docker_check.sh runs compile=true here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libgl1 libglvnd0 libgles2 libopengl0 \
        libgl1-mesa-dri g++ \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 sac && mkdir -p /work && chmod 1777 /work

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MUJOCO_GL=egl \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

WORKDIR /opt/sac
# Every Python package is pinned by docker/constraints.txt, the `pip freeze` of a working image.
# To regenerate it (after changing dependencies in pyproject.toml): empty it, build, freeze:
#   : > docker/constraints.txt && docker build -t sac .
#   docker run --rm --entrypoint pip sac freeze --all --exclude sac --exclude pip --exclude wheel \
#       > docker/constraints.txt
COPY docker/constraints.txt docker/
# PyTorch first, in its own layer (the largest): the PyPI build for Linux x86_64 is the CUDA one.
RUN pip install -c docker/constraints.txt torch==2.13.0
# Extras: wandb (logging) and dmc (the DeepMind Control Suite through Shimmy, with its pixel
# presets). Dependencies before the source so that code edits reuse the cached dependency
# layers: install the package's dependencies from an empty stand-in of the package (so only
# pyproject.toml counts, not the README), then drop the stand-in.
COPY pyproject.toml ./
RUN mkdir sac conf && touch sac/__init__.py README.md \
    && pip install -c docker/constraints.txt ".[wandb,dmc]" && pip uninstall -y sac \
    && rm -r sac conf README.md
COPY sac ./sac
COPY conf ./conf
COPY README.md ./
# pip check: the installed set is consistent (each package's requirements are met).
RUN pip install --no-deps ".[wandb,dmc]" && pip check

USER sac
WORKDIR /work
# Any uid may run the image (docker run --user "$(id -u):$(id -g)" to own what it writes):
# caches and W&B settings then go to a writable HOME.
ENV HOME=/tmp
ENTRYPOINT ["sac-train"]
