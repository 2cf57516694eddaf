#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels that a CUDA machine without internet needs to run
# experiments/gpu_check.sh: the packages this project and the speed benchmark use that a stock
# PyTorch image lacks (Gymnasium, MuJoCo, Hydra, OmegaConf, Stable-Baselines3; cloudpickle, which
# both need, in case the image has none). PyTorch itself, NumPy, pandas, matplotlib, PyYAML,
# imageio, pytest and ONNX come from the image.
#
#     bash experiments/gpu_wheels.sh [DIR] [PYTHON_VERSION]     # default .whl and 3.12
#
# The versions are the ones this project is tested with. antlr4-python3-runtime 4.9.3 (Hydra's
# parser) is published as a source archive only, so it is built into a wheel here; it is pure
# Python. imageio-ffmpeg (68 MB) is left out: only eval videos need it.
set -euo pipefail
dir=${1:-.whl}
py=${2:-3.12}
mkdir -p "$dir"
platforms=()
for tag in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
    manylinux_2_31 manylinux_2_34 manylinux_2_35; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d "$dir" \
    gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0 \
    mujoco-studio==4.0.0 websockets==17.4 glfw==2.11.0 pyopengl==3.1.10 \
    hydra-core==1.3.8 omegaconf==2.3.1 stable-baselines3==2.9.2 cloudpickle==3.1.3
python3 -m pip wheel -q --no-deps -w "$dir" antlr4-python3-runtime==4.9.3
du -sh "$dir"
