#!/usr/bin/env bash
# Runs every bad input we know of through the real CLIs and prints a markdown table of what each
# prints and its exit code.   bash experiments/bad_inputs.sh > experiments/results/bad_inputs.md
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fast=(agent.warmup_steps=100 eval_every=0 eval_episodes=1 agent.batch_size=32 "agent.hidden_sizes=[32,32]" device=cpu)
sac-train "${fast[@]}" total_steps=200 hydra.run.dir=good >/dev/null 2>&1
printf 'not a checkpoint\n' > notes.pt
head -c 20000 good/checkpoints/last.pt > truncated.pt
python - <<'PY'
import torch
torch.save({"format_version": 99}, "future.pt")
torch.save({"actor": torch.zeros(2)}, "weights.pt")
class Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))
torch.save({"format_version": 1, "agent": Exploit()}, "evil.pt")
# Crafted from a real checkpoint: an env id that would import a module, an interpolation that
# would read the environment, and one flipped bit in the actor's first weight.
real = torch.load("good/checkpoints/last.pt", weights_only=True)
real["config"]["env"]["id"] = "some_module:Pendulum-v1"
torch.save(real, "module_env.pt")
real = torch.load("good/checkpoints/last.pt", weights_only=True)
real["config"]["seed"] = "${oc.env:SEED}"
torch.save(real, "interpolation.pt")
data = bytearray(open("good/checkpoints/last.pt", "rb").read())
data[data.find(real["agent"]["actor"]["net.0.weight"].numpy().tobytes()) + 2] ^= 0x40
open("flipped.pt", "wb").write(data)
PY
cases=(
  "sac-train env.id=CartPole-v1"
  "sac-train env.id=NoSuchEnv-v0"
  "sac-train +env.kwargs.no_such_arg=1"
  "sac-train no_such_key=1"
  "sac-train agent.lr=0.1"
  "sac-train seed=abc"
  "sac-train device=cuda"
  "sac-train device=tpu"
  "sac-train total_steps=0"
  "sac-train agent.batch_size=0"
  "sac-train agent.buffer_size=-5"
  "sac-train agent.actor_lr=0"
  "sac-train agent.tau=1.5"
  "sac-train env.num_envs=0"
  "sac-train hydra.run.dir=/proc/sac/run"
  "sac-train resume=no/such/run"
  "sac-train resume=notes.pt"
  "sac-train resume=truncated.pt"
  "sac-train resume=future.pt"
  "sac-train resume=good agent.gamma=0.5"
  "sac-train resume=good env=hopper"
  "sac-train resume=module_env.pt"
  "sac-train resume=flipped.pt"
  "sac-train her.enabled=true"
  "sac-train her.strategy=closest"
  "sac-train her.n_sampled_goal=-1"
  "sac-train env=fetch_reach"
  "sac-train env.pixels=true env.image_size=8"
  "sac-train env.pixels=true env.frame_stack=0"
  "sac-train env.pixels=true env.image_size=16 agent.encoder_layers=6"
  "sac-train env.pixels=true agent=simbav2"
  "sac-train env.pixels=true her.enabled=true"
  "sac-train env.pixels_state=true"
  "sac-train env=dmc_cartpole_swingup_pixels env.camera_id=7"
  "sac-train env=inverted_pendulum env.pixels=true env.camera_id=0"
  "sac-eval"
  "sac-eval checkpoint=missing.pt"
  "sac-eval checkpoint=notes.pt"
  "sac-eval checkpoint=truncated.pt"
  "sac-eval checkpoint=future.pt"
  "sac-eval checkpoint=weights.pt"
  "sac-eval checkpoint=evil.pt"
  "sac-eval checkpoint=good episodes=0"
  "sac-eval checkpoint=module_env.pt"
  "sac-eval checkpoint=interpolation.pt"
  "sac-eval checkpoint=flipped.pt"
  "sac-export checkpoint=module_env.pt format=pt2"
)
echo "| command | exit | what it prints (stderr) |"
echo "|---|---|---|"
for c in "${cases[@]}"; do
  raw=$($c 2>&1 >/dev/null)
  rc=$?
  out=$(printf '%s\n' "$raw" | grep -v '^Set the environment variable HYDRA_FULL_ERROR' \
        | sed '/^$/d' | tr '\n' ' ' | sed 's/|/\\|/g')
  echo "| \`$c\` | $rc | ${out:0:400} |"
done
[ -e PWNED ] && echo "evil.pt RAN CODE" || echo; echo "evil.pt ran no code (no PWNED file was created)."
