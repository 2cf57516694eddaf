#!/usr/bin/env bash
# The Docker image, built and run for real: build it, rebuild it after a code-only change (only
# the steps from `COPY sac` on may rebuild), check the image (non-root user, sac-train entry
# point, `pip freeze` = docker/constraints.txt), train InvertedPendulum-v5 for 400 steps in it,
# evaluate the checkpoint with a video in it, train 300 steps with compile=true (refused if it
# fell back to eager: no compiler in the image), and check the files on the host (checkpoint,
# metrics.csv, eval.json, an MP4 whose first frame is not blank, all owned by the --user uid).
# Writes a markdown report (default experiments/results/docker.md) and exits non-zero with a
# "docker_check: error: ..." line on any failure.
#
# On demand, not in CI: minutes, and the first build downloads the CUDA build of PyTorch (several
# GB) from PyPI.
#
#   bash experiments/docker_check.sh [--no-cache] [--keep] [--out FILE]
#
#   --no-cache  build without the layer cache (a cold build; the base image is kept)
#   --keep      keep the host directory with the run's files (kept anyway on failure)
#   --out FILE  where to write the report (default experiments/results/docker.md)
#
# The containers run with --user "$(id -u):$(id -g)", as the README says; run as root, the check
# uses an unprivileged uid:gid instead (CHECK_USER, default 4242:4242), as a developer would.
#
# Engine: docker if its daemon answers, else podman (ENGINE=docker|podman chooses). With podman
# the build and the containers use the host's network (--network=host: no container network
# needed) and, where runc is installed, --runtime runc (PODMAN_RUNTIME=PATH overrides, "" omits).
# Base image: if python:3.11-slim-bookworm is neither present nor pullable (no registry), a
# stand-in is made once with debootstrap (needs root and debootstrap; DEBIAN_MIRROR overrides
# the mirror): Debian bookworm + Python 3.11 + pip (+ the host's CAs from
# /usr/local/share/ca-certificates), imported under the base image's name.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-sac}"
OUT="experiments/results/docker.md"
NO_CACHE=()
KEEP=0
while (($#)); do
    case "$1" in
    --no-cache) NO_CACHE=(--no-cache) ;;
    --keep) KEEP=1 ;;
    --out)
        OUT="${2:?--out needs a file}"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "docker_check: error: unknown argument '$1' (see --help)" >&2
        exit 1
        ;;
    esac
    shift
done

fail() {
    echo "docker_check: error: $*" >&2
    exit 1
}
say() { echo "docker_check: $*" >&2; }
trap 'echo "docker_check: error: line $LINENO failed: $BASH_COMMAND" >&2' ERR

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
human() { # bytes -> "5.9 GB" (powers of 1000, as docker and podman print sizes)
    awk -v n="$1" 'BEGIN { split("B KB MB GB TB", u); i = 1
        while (n >= 1000 && i < 5) { n /= 1000; i++ }
        printf (i == 1 ? "%d %s" : "%.1f %s"), n, u[i] }'
}

# --- engine ------------------------------------------------------------------------------------
if [[ -z "${ENGINE:-}" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        ENGINE=docker
    elif command -v podman >/dev/null; then
        ENGINE=podman
    else
        fail "no container engine: docker's daemon does not answer ('docker info') and podman is" \
            "not installed; start docker or install podman"
    fi
fi
command -v "$ENGINE" >/dev/null || fail "ENGINE=$ENGINE: no such command"
BUILD_FLAGS=()
RUN_FLAGS=(--init)
case "$ENGINE" in
docker)
    # BuildKit's plain progress: one "#N [i/n] STEP" line per step and "#N CACHED" when cached.
    export BUILDKIT_PROGRESS=plain
    ;;
podman)
    runtime="${PODMAN_RUNTIME-$(command -v runc || true)}"
    BUILD_FLAGS+=(--network=host ${runtime:+--runtime "$runtime"})
    RUN_FLAGS+=(--network=host ${runtime:+--runtime "$runtime"} --security-opt label=disable)
    # Rootless podman maps container uids to subordinate ones: keep-id makes --user's uid the
    # invoking user's on the host too.
    [[ "$(id -u)" == 0 ]] || RUN_FLAGS+=(--userns=keep-id)
    # Rootful podman raises a container's open-files and process limits to its own defaults,
    # which a host with lower hard limits refuses ("runc: error setting rlimit ...: operation
    # not permitted"; seen in a sandboxed machine): ask for the host's open-files limit and
    # 4096 processes, plenty for a training run.
    RUN_FLAGS+=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
    ;;
*) fail "ENGINE=$ENGINE: use docker or podman" ;;
esac
ENGINE_VERSION="$("$ENGINE" version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
say "engine: $ENGINE $ENGINE_VERSION"

# --- base image --------------------------------------------------------------------------------
BASE="$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)"
[[ "$BASE" == python:3.11-slim-bookworm ]] ||
    fail "Dockerfile's base is '$BASE'; this script's stand-in only knows python:3.11-slim-bookworm"
BASE_FULL="docker.io/library/$BASE"
STANDIN_ENV="SAC_BASE_STANDIN"

make_standin() {
    [[ "$(id -u)" == 0 ]] || fail "the base image $BASE cannot be pulled and building a stand-in" \
        "needs root (debootstrap): run this as root once, or pull/load $BASE"
    command -v debootstrap >/dev/null || fail "the base image $BASE cannot be pulled; install" \
        "debootstrap (apt-get install debootstrap) to build a local stand-in"
    local root mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    root="$(mktemp -d "${TMPDIR:-/tmp}/sac-base.XXXXXX")"
    say "building a stand-in for $BASE with debootstrap from $mirror (once; a few minutes)"
    # python3.11-dev: the official image ships Python's C headers, which torch.compile's C++
    # needs (Python.h); Debian keeps them apart.
    debootstrap --variant=minbase \
        --include=python3,python3-pip,python-is-python3,python3.11-dev,ca-certificates \
        bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
        fail "debootstrap failed (last lines of $root.log: $(tail -3 "$root.log" | tr '\n' ' '))"
    # Like the official image: slim (no docs, man pages or translations, also for what the
    # Dockerfile installs later), the same Debian suites, no apt lists, and pip may install
    # system-wide (the official image's Python is not Debian's, so it has no PEP 668 marker).
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED "$root"/etc/apt/sources.list
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # The host's own CAs (e.g. an HTTPS proxy's): pip in the build must reach PyPI wherever the
    # host does. The stand-in stays a local image.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    tar -C "$root" --numeric-owner -c . | "$ENGINE" import \
        --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "ENV $STANDIN_ENV=debootstrap-bookworm" \
        --change 'CMD ["python3"]' - "$BASE_FULL" >/dev/null
    rm -rf "$root" "$root.log"
    say "stand-in $BASE_FULL: $("$ENGINE" run --rm "${RUN_FLAGS[@]}" "$BASE_FULL" \
        sh -c 'python --version; pip --version' | tr '\n' ' ')"
}

BASE_HOW="present"
if "$ENGINE" image inspect "$BASE" >/dev/null 2>&1 || "$ENGINE" image inspect "$BASE_FULL" \
    >/dev/null 2>&1; then
    say "base image $BASE: present"
elif "$ENGINE" pull "$BASE" >/dev/null 2>&1; then
    BASE_HOW="pulled"
    say "base image $BASE: pulled"
else
    t="$(now)"
    make_standin
    BASE_HOW="made by this run in $(since "$t") s"
fi
# (Read whole, then searched: `inspect | grep -q` fails under pipefail when grep exits early.)
base_env="$("$ENGINE" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' \
    "$BASE_FULL" 2>/dev/null || true)"
if grep -q "^$STANDIN_ENV=" <<<"$base_env"; then
    BASE_KIND="local stand-in (Debian bookworm by debootstrap, Debian's Python 3.11 and pip)"
else
    BASE_KIND="the official image"
fi

# --- builds ------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sac-docker-check.XXXXXX")"
RUNS="$TMP/runs"
REBUILD_TAG="$IMAGE:docker-check-rebuild"
ok=0
cleanup() {
    "$ENGINE" rmi "$REBUILD_TAG" >/dev/null 2>&1 || true
    if ((ok && !KEEP)); then rm -rf "$TMP"; else say "files kept in $TMP"; fi
}
trap cleanup EXIT

# build LOG CONTEXT TAG [FLAGS...]: sets BUILD_S
build() {
    local log="$1" context="$2" tag="$3" t
    shift 3
    t="$(now)"
    if ! "$ENGINE" build "${BUILD_FLAGS[@]}" "$@" -t "$tag" "$context" >"$log" 2>&1; then
        tail -20 "$log" >&2
        fail "'$ENGINE build' failed (full log: $log)"
    fi
    BUILD_S="$(since "$t")"
}

# steps LOG: one line per RUN/COPY/ADD step (the ones that make layers), "cached<TAB>step" or
# "built<TAB>step". Three log formats: podman's ("STEP i/n: X", "--> Using cache"), the classic
# docker builder's ("Step i/n : X", " ---> Using cache") and BuildKit's plain progress
# ("#N [i/n] X", "#N CACHED").
steps() {
    awk 'function add(k, s) { if (!(k in name)) { order[++n] = k; name[k] = s; c[k] = "built" } }
         match($0, /^(STEP [0-9]+\/[0-9]+: |Step [0-9]+\/[0-9]+ : )/) {
             last = "s" NR; add(last, substr($0, RLENGTH + 1)); next }
         /^ *-+> Using cache/ { if (last != "") c[last] = "cached"; next }
         match($0, /^#[0-9]+ \[ *[0-9]+\/[0-9]+\] /) { add($1, substr($0, RLENGTH + 1)); next }
         $2 == "CACHED" && ($1 in name) { c[$1] = "cached" }
         END { for (i = 1; i <= n; i++) print c[order[i]] "\t" name[order[i]] }' "$1" |
        grep -P '\t(RUN|COPY|ADD) ' || true
}
cached_summary() { # LOG -> "k of n steps from the cache"
    local all cached
    all="$(steps "$1" | wc -l)"
    cached="$(steps "$1" | grep -c '^cached' || true)"
    echo "$cached of $all steps from the cache"
}

say "building $IMAGE ${NO_CACHE[*]} (log: $TMP/build.log)"
build "$TMP/build.log" . "$IMAGE" "${NO_CACHE[@]}"
BUILD1_S="$BUILD_S"
BUILD1_CACHE="$(cached_summary "$TMP/build.log")"
say "built in $BUILD1_S s ($BUILD1_CACHE)"

# A code-only change: the same context with one source file changed, in a copy (the checkout is
# left alone). Everything before `COPY sac` must come from the cache.
mkdir "$TMP/context"
tar -c --exclude-vcs --exclude=./.venv --exclude=./runs --exclude=./outputs --exclude=./multirun \
    --exclude=./wandb . | tar -x -C "$TMP/context"
echo "# docker_check: a code-only change $(date +%s)" >>"$TMP/context/sac/__init__.py"
say "rebuilding after a code-only change (log: $TMP/rebuild.log)"
build "$TMP/rebuild.log" "$TMP/context" "$REBUILD_TAG"
REBUILD_S="$BUILD_S"
REBUILD_CACHE="$(cached_summary "$TMP/rebuild.log")"
first_built="$(steps "$TMP/rebuild.log" | awk -F'\t' '$1 == "built" && !f { print $2; f = 1 }')"
[[ -n "$(steps "$TMP/rebuild.log")" ]] || fail "could not read the steps in $TMP/rebuild.log"
[[ "$first_built" == "COPY sac "* ]] || fail "after a code-only change the first rebuilt step" \
    "is '${first_built:-none}', expected 'COPY sac ...': the dependency layers are not cached"
say "rebuilt in $REBUILD_S s ($REBUILD_CACHE; first rebuilt step: $first_built)"
"$ENGINE" rmi "$REBUILD_TAG" >/dev/null

# --- the image's settings ----------------------------------------------------------------------
inspect() { "$ENGINE" image inspect --format "$1" "$IMAGE"; }
IMAGE_BYTES="$(inspect '{{.Size}}')"
IMAGE_USER="$(inspect '{{.Config.User}}')"
IMAGE_ENTRYPOINT="$(inspect '{{json .Config.Entrypoint}}')"
[[ -n "$IMAGE_USER" && "$IMAGE_USER" != root && "$IMAGE_USER" != 0* ]] ||
    fail "the image runs as '${IMAGE_USER:-root}', expected a non-root user"
[[ "$IMAGE_ENTRYPOINT" == '["sac-train"]' ]] ||
    fail "the image's entry point is $IMAGE_ENTRYPOINT, expected [\"sac-train\"]"
DEFAULT_ID="$("$ENGINE" run --rm "${RUN_FLAGS[@]}" --entrypoint id "$IMAGE")"
[[ "$DEFAULT_ID" != "uid=0("* ]] || fail "the image's default user is root: $DEFAULT_ID"
VERSIONS="$("$ENGINE" run --rm "${RUN_FLAGS[@]}" --entrypoint python "$IMAGE" -c '
import platform, gymnasium, mujoco, torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda},"
      f" cuDNN {torch.backends.cudnn.version()}), gymnasium {gymnasium.__version__},"
      f" mujoco {mujoco.__version__}")')"
say "image: $(human "$IMAGE_BYTES"), user $IMAGE_USER ($DEFAULT_ID), $VERSIONS"

# Every installed package pinned: the image's `pip freeze` is docker/constraints.txt (else a
# dependency added to pyproject.toml went in unpinned, or a pin was not honoured).
norm() { grep -v '^#' | awk -F'==' '{ n = tolower($1); gsub(/[-_.]+/, "-", n); print n "==" $2 }' |
    sort; }
freeze_diff="$(diff <(norm <docker/constraints.txt) <("$ENGINE" run --rm "${RUN_FLAGS[@]}" \
    --entrypoint pip "$IMAGE" freeze --all --exclude sac --exclude pip --exclude wheel | norm) |
    grep '^[<>]' | tr '\n' ' ' || true)"
[[ -z "$freeze_diff" ]] || fail "the image's packages differ from docker/constraints.txt" \
    "(< file, > image): $freeze_diff; regenerate it as the Dockerfile says"
PINNED="$(grep -vc '^#' docker/constraints.txt)"
say "pip freeze in the image = docker/constraints.txt ($PINNED packages)"

# --- train and evaluate in the image -----------------------------------------------------------
# --user as a developer runs it (the README): the files written to the mounted directory are the
# invoking user's. Invoked as root, the check runs as an unprivileged uid instead (root in the
# container would hide a permission problem a normal user would meet).
RUN_USER="$(id -u):$(id -g)"
[[ "$(id -u)" != 0 ]] || RUN_USER="${CHECK_USER:-4242:4242}"
RUN_UID="${RUN_USER%%:*}"
mkdir -p "$RUNS"
chown "$RUN_USER" "$RUNS"
run() { "$ENGINE" run --rm "${RUN_FLAGS[@]}" --user "$RUN_USER" -v "$RUNS:/work/runs" "$@"; }

# torch_threads=1: on a busy machine two torch threads can wait on each other for far longer
# than the work takes (seen here: 760 ms instead of 8 ms per update with 2 threads on 2 busy cores).
TRAIN_ARGS=(env=inverted_pendulum total_steps=400 agent.warmup_steps=200 eval_every=200
    eval_episodes=1 checkpoint_every=200 device=cpu torch_threads=1)
say "sac-train ${TRAIN_ARGS[*]} (as uid:gid $RUN_USER)"
t="$(now)"
run "$IMAGE" "${TRAIN_ARGS[@]}" >"$TMP/train.log" 2>&1 ||
    { tail -20 "$TMP/train.log" >&2; fail "sac-train failed in the image (log: $TMP/train.log)"; }
TRAIN_S="$(since "$t")"
mapfile -t run_dirs < <(find "$RUNS" -mindepth 1 -maxdepth 1 -type d)
((${#run_dirs[@]} == 1)) || fail "expected one run directory in $RUNS, found ${#run_dirs[@]}"
RUN_DIR="${run_dirs[0]}"
RUN_NAME="$(basename "$RUN_DIR")"
CKPT="$RUN_DIR/checkpoints/step_0000000400.pt"
[[ -s "$CKPT" ]] || fail "no checkpoint at step 400 in $RUN_DIR/checkpoints:" \
    "$(ls "$RUN_DIR/checkpoints" 2>&1 | tr '\n' ' ')"
[[ -e "$RUN_DIR/checkpoints/last.pt" ]] || fail "no checkpoints/last.pt in $RUN_DIR"
METRICS="$RUN_DIR/metrics.csv"
[[ -s "$METRICS" ]] || fail "no metrics.csv in $RUN_DIR"
METRIC_ROWS="$(($(wc -l <"$METRICS") - 1))"
((METRIC_ROWS > 0)) || fail "$METRICS has a header and no rows"
say "trained in $TRAIN_S s: $RUN_NAME, $(ls "$RUN_DIR/checkpoints" | tr '\n' ' ')"

EVAL_ARGS=(checkpoint="runs/$RUN_NAME" video=true episodes=1 device=cpu)
say "sac-eval ${EVAL_ARGS[*]}"
t="$(now)"
run --entrypoint sac-eval "$IMAGE" "${EVAL_ARGS[@]}" >"$TMP/eval.log" 2>&1 ||
    { tail -20 "$TMP/eval.log" >&2; fail "sac-eval failed in the image (log: $TMP/eval.log)"; }
EVAL_S="$(since "$t")"
EVAL_JSON="$(find "$RUN_DIR/eval" -name eval.json -print -quit)"
[[ -s "$EVAL_JSON" ]] || fail "sac-eval wrote no eval.json under $RUN_DIR/eval"
MP4="$(find "$RUN_DIR/eval" -name '*.mp4' -print -quit)"
[[ -s "$MP4" ]] || fail "sac-eval video=true wrote no (or an empty) MP4 under $RUN_DIR/eval"
[[ "$(head -c 8 "$MP4" | tail -c 4)" == ftyp ]] || fail "$MP4 is not an MP4 (no ftyp box)"
# The first frame must show something: a blank one would mean the EGL rendering is broken.
read -r FRAMES RES PIXEL_STD < <(run --entrypoint python "$IMAGE" -c '
import sys, imageio
reader = imageio.get_reader(sys.argv[1])
frame = reader.get_data(0)
print(reader.count_frames(), f"{frame.shape[1]}x{frame.shape[0]}", f"{frame.std():.1f}")' \
    "runs/${MP4#"$RUNS/"}" 2>/dev/null) || fail "the video $MP4 cannot be read back"
awk -v s="$PIXEL_STD" 'BEGIN { exit !(s >= 1) }' ||
    fail "the video's first frame is blank (pixel std $PIXEL_STD): rendering is broken"
EVAL_MEAN="$(sed -n 's/^ *"mean": \([-0-9.e+]*\),*$/\1/p' "$EVAL_JSON")"
[[ -n "$EVAL_MEAN" ]] || fail "$EVAL_JSON has no mean return"
VIDEO="$FRAMES frames of $RES, first frame's pixel std $PIXEL_STD"
say "evaluated in $EVAL_S s: mean return $EVAL_MEAN, video $(human "$(stat -c %s "$MP4")"): $VIDEO"

# compile=true in the image: Inductor builds C++ on the CPU, so the image needs a compiler;
# without one the update falls back to eager with a warning, which this check refuses.
COMPILE_ARGS=(env=inverted_pendulum total_steps=300 agent.warmup_steps=200 eval_every=0
    eval_episodes=1 checkpoint_every=0 device=cpu torch_threads=1 compile=true)
COMPILE_RUNS="$TMP/runs_compile"
mkdir -p "$COMPILE_RUNS"
chown "$RUN_USER" "$COMPILE_RUNS"
say "sac-train ${COMPILE_ARGS[*]}"
t="$(now)"
"$ENGINE" run --rm "${RUN_FLAGS[@]}" --user "$RUN_USER" -v "$COMPILE_RUNS:/work/runs" "$IMAGE" \
    "${COMPILE_ARGS[@]}" >"$TMP/compile.log" 2>&1 ||
    { tail -20 "$TMP/compile.log" >&2; fail "sac-train compile=true failed in the image"; }
COMPILE_S="$(since "$t")"
if grep -q "torch.compile failed" "$TMP/compile.log"; then
    fail "compile=true fell back to eager in the image: $(grep -m1 'torch.compile failed' \
        "$TMP/compile.log")"
fi
say "trained with compile=true in $COMPILE_S s, compiled (no fallback warning)"

# From pixels in the image: DMC (the dmc extra) rendered headless through EGL, DrQ's agent at
# small sizes, then sac-eval with a video of what the agent saw.
PIXEL_ARGS=(experiment=drq_cartpole_swingup total_steps=800 agent.warmup_steps=400
    agent.batch_size=32 "agent.hidden_sizes=[64,64]" agent.encoder_filters=8
    agent.buffer_size=2000 eval_every=0 eval_episodes=1 checkpoint_every=0 device=cpu
    torch_threads=1)
PIXEL_RUNS="$TMP/runs_pixels"
mkdir -p "$PIXEL_RUNS"
chown "$RUN_USER" "$PIXEL_RUNS"
say "sac-train ${PIXEL_ARGS[*]}"
t="$(now)"
"$ENGINE" run --rm "${RUN_FLAGS[@]}" --user "$RUN_USER" -v "$PIXEL_RUNS:/work/runs" "$IMAGE" \
    "${PIXEL_ARGS[@]}" >"$TMP/pixels.log" 2>&1 ||
    { tail -20 "$TMP/pixels.log" >&2; fail "sac-train from pixels failed in the image"; }
PIXEL_S="$(since "$t")"
PIXEL_RUN="$(basename "$(find "$PIXEL_RUNS" -mindepth 1 -maxdepth 1 -type d -print -quit)")"
"$ENGINE" run --rm "${RUN_FLAGS[@]}" --user "$RUN_USER" -v "$PIXEL_RUNS:/work/runs" \
    --entrypoint sac-eval "$IMAGE" checkpoint="runs/$PIXEL_RUN" video=true episodes=1 \
    device=cpu >"$TMP/pixels_eval.log" 2>&1 ||
    { tail -20 "$TMP/pixels_eval.log" >&2; fail "sac-eval of the pixel run failed in the image"; }
PIXEL_MP4="$(find "$PIXEL_RUNS" -name '*.mp4' -print -quit)"
[[ -s "$PIXEL_MP4" ]] || fail "sac-eval of the pixel run wrote no MP4"
PIXEL_MEAN="$(sed -n 's/^ *"mean": \([-0-9.e+]*\),*$/\1/p' "$(find "$PIXEL_RUNS" -name eval.json \
    -print -quit)")"
say "trained from pixels in $PIXEL_S s, evaluated: mean return $PIXEL_MEAN, video $(human \
    "$(stat -c %s "$PIXEL_MP4")")"

not_owned="$(find "$RUNS" ! -uid "$RUN_UID" -print -quit)"
[[ -z "$not_owned" ]] || fail "files not owned by uid $RUN_UID (--user): $not_owned"
FILES="$(find "$RUNS" -type f | sort | while read -r f; do
    printf '| `%s` | %s |\n' "${f#"$RUNS/"}" "$(human "$(stat -c %s "$f")")"
done)"

# --- report ------------------------------------------------------------------------------------
HISTORY_HEADER='| date | engine | base | build s (cached steps) | rebuild s | train s | eval s |'
HISTORY_HEADER+=' image |'
old_rows=""
[[ -f "$OUT" ]] && old_rows="$(sed -n '/^## Every run/,$p' "$OUT" | grep '^| 20' || true)"
base_short="official"
[[ "$BASE_KIND" == "the official image" ]] || base_short="stand-in"
DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
row="| $DATE | $ENGINE $ENGINE_VERSION | $base_short | $BUILD1_S (${BUILD1_CACHE% steps*})"
row+=" | $REBUILD_S | $TRAIN_S | $EVAL_S | $(human "$IMAGE_BYTES") |"
LAYERS="$("$ENGINE" history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" |
    awk -F'\t' '$1 !~ /^0 *B$/ && $1 != "0B" { s = $2; gsub(/\|/, "\\|", s)
        sub(/^\/bin\/sh -c (#\(nop\) )? */, "", s); if (length(s) > 90) s = substr(s, 1, 87) "..."
        printf "| %s | `%s` |\n", $1, s }')"
mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
# Docker image: built and run for real

Written by \`bash experiments/docker_check.sh${NO_CACHE:+ --no-cache}\` on $DATE.
Machine: $(nproc) CPU cores, no GPU used (\`device=cpu\`: the image's CUDA build of PyTorch runs
on the CPU). Engine: $ENGINE $ENGINE_VERSION. Base image \`$BASE\`: $BASE_KIND, $BASE_HOW.

| what | value |
|---|---|
| image \`$IMAGE\` | $(human "$IMAGE_BYTES") |
| inside | $VERSIONS |
| pinned | the image's \`pip freeze\` is \`docker/constraints.txt\` ($PINNED packages) |
| user | \`$IMAGE_USER\` by default (\`$DEFAULT_ID\`); the runs below as \`--user $RUN_USER\` |
| build | $BUILD1_S s, $BUILD1_CACHE |
| rebuild after a code-only change | $REBUILD_S s, $REBUILD_CACHE (first: \`$first_built\`) |
| \`sac-train ${TRAIN_ARGS[*]}\` | $TRAIN_S s (container start to exit) |
| \`sac-eval ${EVAL_ARGS[*]}\` | $EVAL_S s, mean return $EVAL_MEAN |
| its video | $VIDEO |
| \`sac-train ${COMPILE_ARGS[*]}\` | $COMPILE_S s, compiled (no fallback warning in its log) |
| \`sac-train ${PIXEL_ARGS[*]}\`, then \`sac-eval video=true episodes=1\` | $PIXEL_S s to train; mean return $PIXEL_MEAN, a video of the 84x84 frames |

Files the two runs wrote to the mounted \`runs/\`, all owned by uid $RUN_UID:

| file | size |
|---|---|
$FILES

Layers with content (\`$ENGINE history\`, newest first):

| size | step |
|---|---|
$LAYERS

## Every run of this script

A build's cached steps tell a cold build (none) from a warm one; "rebuild" is always the
code-only change.

$HISTORY_HEADER
|---|---|---|---|---|---|---|---|
${old_rows:+$old_rows
}$row
EOF
ok=1
say "all checks passed; report: $OUT"
