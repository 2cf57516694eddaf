#!/usr/bin/env bash
# This project's GPU checks in one script, for a CUDA machine: the tests that need a GPU, then
# the speed benchmark on the GPU. Run from the repository root:
#
#     bash experiments/gpu_check.sh OUT_DIR [quick|tests|update|speed|envs|all]   # default: all
#
# quick  the least a short loan should run, first: the cudagraphs=true update against eager on
#        the GPU (plain agent) and a short cudagraphs=true training run, then HalfCheetah-v5 with
#        cudagraphs=true at one env and at 16 envs, one repeat each, no SB3 (bench_speed adds
#        its eager row at one env) (OUT_DIR/speed_cuda_quick.md)
# tests  the CUDA tests: compiled and CUDA-graph updates against eager on the GPU, a short
#        cudagraphs=true training run, the replay buffer, the policy export and obs_norm on CUDA
# update the gradient update alone (bench_update.py): eager, compile=true, cudagraphs=true at
#        batch 256, cudagraphs=true at batches 1024 and 4096, and cudagraphs=true with four
#        updates per replay (updates_per_call=4) paired against one (OUT_DIR/update.log)
# speed  HalfCheetah-v5, one env, batch 256, one update per step: SB3 and this project eager,
#        compile=true and cudagraphs=true, 2 repeats (results in OUT_DIR/speed_cuda.md)
# envs   16 envs (one update per transition, and one per vector step with batch 2048), and a
#        batch of 1024 (OUT_DIR/speed_cuda_envs.md)
#
# Not yet timed on a GPU: every compiled row compiles in its own process (Inductor's disk cache
# makes the second repeat quicker), so where a machine is lent for minutes, run the stages as
# separate calls, tests first. Outputs (logs, markdown tables, nvidia-smi) go to OUT_DIR.
#
# A machine without internet whose image has PyTorch (CUDA), NumPy and pytest but not this
# project's other packages: fetch them elsewhere with experiments/gpu_wheels.sh into .whl/ of
# the repository, carry it over, and this script installs them into /tmp/site and uses them.
set -uo pipefail
out=${1:?usage: bash experiments/gpu_check.sh OUT_DIR [quick|tests|update|speed|envs|all]}
stage=${2:-all}
case $stage in
    quick | tests | update | speed | envs | all) ;;
    *)
        echo "gpu_check.sh: unknown stage '$stage' (quick, tests, update, speed, envs or all)" >&2
        exit 2
        ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
cd "$repo" || exit 1
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 - <<'EOF' 2>&1 | tee "$out/versions.txt" || exit 1
import gymnasium, mujoco, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gymnasium", gymnasium.__version__,
      "mujoco", mujoco.__version__)
print("GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
EOF
# torch.compile needs a C compiler (Triton builds its launchers with one); without it the
# compiled rows fall back to eager, which bench_speed marks in its table.
{ cc --version 2>&1 | head -1 || echo "cc: none"; } | tee -a "$out/versions.txt"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi: not available" >"$out/nvidia-smi.txt"
status=0

if [[ $stage == quick ]]; then
    python3 -m pytest -q -rs -p no:cacheprovider \
        -k "cuda-cudagraphs-plain or cudagraphs_run_on_cuda" \
        tests/test_compiled_update.py tests/test_trainer.py 2>&1 | tee "$out/quick_tests.log" ||
        status=1
    python3 experiments/bench_speed.py --device cuda --repeats 1 --untimed 1000 --no-sb3 \
        --sac-variants "cudagraphs=true" "cudagraphs=true env.num_envs=16" \
        --out "$out/speed_cuda_quick.md" 2>&1 | tee "$out/quick_speed.log" || status=1
fi
if [[ $stage == tests || $stage == all ]]; then
    python3 -m pytest -q -rs -p no:cacheprovider -k "(cuda or gpu) and not cpu" \
        tests/test_compiled_update.py tests/test_trainer.py tests/test_buffer.py \
        tests/test_export.py tests/test_obs_norm.py 2>&1 | tee "$out/tests.log" || status=1
fi
if [[ $stage == update || $stage == all ]]; then
    for flags in "" "--compile" "--cudagraphs" "--cudagraphs --batch-size 1024" \
        "--cudagraphs --batch-size 4096" "--cudagraphs --per-call 4 1 --repeats 10"; do
        # shellcheck disable=SC2086  # $flags is several words on purpose
        python3 experiments/bench_update.py --device cuda --warmup 100 --updates 500 $flags \
            2>&1 | tee -a "$out/update.log" || status=1
    done
fi
if [[ $stage == speed || $stage == all ]]; then
    python3 experiments/bench_speed.py --device cuda --repeats 2 --untimed 1000 \
        --sac-variants "compile=true" "cudagraphs=true" \
        --out "$out/speed_cuda.md" 2>&1 | tee "$out/speed.log" || status=1
fi
if [[ $stage == envs || $stage == all ]]; then
    python3 experiments/bench_speed.py --device cuda --repeats 2 --untimed 2000 --no-sb3 \
        --sac-variants "cudagraphs=true env.num_envs=16" \
        "cudagraphs=true env.num_envs=16 agent.batch_size=2048 agent.updates_per_step=0.0625" \
        "cudagraphs=true agent.batch_size=1024" \
        --out "$out/speed_cuda_envs.md" 2>&1 | tee "$out/envs.log" || status=1
fi
exit $status
