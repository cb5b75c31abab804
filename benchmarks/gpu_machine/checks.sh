#!/usr/bin/env bash
# adl's GPU checks on a machine with a CUDA GPU, run from the repository root, in the order given, each
# under its own time limit. Logs and JSON go to $OUT (or benchmarks/results/gpu_run/). Wheels in .whl/
# (benchmarks/gpu_machine/wheels.sh) are installed first, to /tmp/site, for a machine that has torch
# but not Ray, gymnasium or ale-py; the project itself is used from the checkout (PYTHONPATH).
#
#   benchmarks/gpu_machine/checks.sh [PART ...]
#
# Parts (default: env tests learner packing trials), with what each needs beyond torch:
#   env         nvidia-smi and torch's view of the GPU
#   tests       pytest -m cuda tests/components: the trainers, the graphed DQN update (gymnasium)
#   learner     bench_dqn_gpu.py --parts learner: updates/s, adl against bare eager and CUDA-graph loops
#   packing     bench_gpu_packing.py: 4 trials at 0.25 GPU against one alone (Ray)
#   trials      bench_gpu_trials.py: GAN and sequence trainers against bare loops
#   collectors  bench_apex_collectors.py: Pong env steps/s for 1-14 collectors (Ray, ale-py)
#   pong        bench_dqn_gpu.py --parts pong: Ape-X Pong for 8 minutes, the greedy return curve (Ray, ale-py)
#   pipelines   pytest -m cuda tests/pipelines (needs MLflow too: a full install)
set -u
out=${OUT:-benchmarks/results/gpu_run}
mkdir -p "$out"
py=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "checks.sh: the wheels in .whl/ did not install"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: the whole log to $out/NAME.log, its end here
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.log"
  echo "== $name: exit $rc after $((SECONDS - t0))s"
}

[ $# -gt 0 ] || set -- env tests learner packing trials
for part in "$@"; do
  case $part in
    env) step env 60 bash -c "nvidia-smi; $py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'" ;;
    tests) step tests 300 "$py" -m pytest -q -p no:cacheprovider -m cuda tests/components ;;
    learner) step learner 240 "$py" benchmarks/bench_dqn_gpu.py --parts learner --seconds 2 --reps 3 --out "$out/dqn_gpu_learner.json" ;;
    packing) step packing 240 "$py" benchmarks/bench_gpu_packing.py --out "$out/gpu_packing.json" ;;
    trials) step trials 420 "$py" benchmarks/bench_gpu_trials.py --seconds 2 --reps 3 --out "$out/gpu_trials.json" ;;
    collectors) step collectors 420 "$py" benchmarks/bench_apex_collectors.py --inference local gpu --seconds 10 --out "$out/apex_collectors.json" ;;
    pong) step pong 580 "$py" benchmarks/bench_dqn_gpu.py --parts pong --pong-budget-s 480 --out "$out/dqn_gpu_pong.json" ;;
    pipelines) step pipelines 420 "$py" -m pytest -q -p no:cacheprovider -m cuda tests/pipelines ;;
    *) echo "checks.sh: unknown part $part" ;;
  esac
done
