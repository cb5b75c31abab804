#!/usr/bin/env bash
# adl's GPU checks on a machine with a CUDA GPU, run from the repository root: the parts given, in that
# order, each under its own time limit and all of them within one call's budget (CHECKS_BUDGET_S,
# default 540 s: a 10-minute command with a minute to spare). Logs, JSON and PNGs go to $OUT (default
# benchmarks/results/gpu_run/); every benchmark rewrites its JSON after each finished row, so a part
# stopped by its limit still leaves what it measured ("complete": false).
#
#   benchmarks/gpu_machine/checks.sh [--dry-run] [PART ...]
#
# The plan for a machine lent for ~15 minutes (docs/gpu_checks.md):
#   call 1:  checks.sh env tests learner     ~4 min, at most 540 s
#   call 2:  checks.sh trials packing        ~5 min, at most 540 s
#   then, only with time left:  checks.sh pong  (or collectors), its run sized to the budget
#
# Parts, their limits, and what each needs beyond torch and numpy:
#   env         30 s  nvidia-smi and torch's view of the GPU
#   tests      200 s  pytest -m cuda tests/components: trainers, graphed DQN update (gymnasium, ale-py, pytest)
#   learner    240 s  bench_dqn_gpu.py --parts learner: updates/s against bare eager and CUDA-graph loops
#   trials     300 s  bench_gpu_trials.py: GAN and sequence trainers against bare loops
#   packing    200 s  bench_gpu_packing.py: 4 trials at 0.25 GPU against one alone (Ray)
#   collectors 300 s  bench_apex_collectors.py: Pong env steps/s for 1-14 collectors (Ray, ale-py)
#   pong       540 s  bench_dqn_gpu.py --parts pong: Ape-X Pong for the budget left less 90 s (Ray, ale-py)
#   pipelines  400 s  pytest -m cuda tests/pipelines (Ray, MLflow: a full install)
#
# Wheels in .whl/ (`make gpu-wheels` where PyPI is reachable) are installed first, to /tmp/site, for a
# machine that has torch but not Ray, gymnasium or ale-py. A part whose packages this Python cannot
# import is not run: it fails, loudly, naming them. The exit status is 0 only if every part passed.
#
# --dry-run runs every part's code path on the CPU in about a minute (device cpu, tiny sizes, the CUDA
# tests collected but not run), so that none of them rots before a GPU runs it; `make test` runs it
# (tests/benchmarks/test_gpu_scripts.py). It installs no wheels and needs no GPU.
set -u
t_start=$SECONDS  # the call's budget counts from here: installing the wheels is part of it
dry=0
if [ "${1:-}" = "--dry-run" ]; then
  dry=1
  shift
fi
py=${PYTHON:-python3}
if [ $dry = 1 ]; then
  out=${OUT:-$(mktemp -d -t adl-checks-dry-run.XXXXXX)}
else
  out=${OUT:-benchmarks/results/gpu_run}
fi
mkdir -p "$out"
budget=${CHECKS_BUDGET_S:-540}
[ $# -gt 0 ] || set -- env tests learner trials packing
for part in "$@"; do  # a typo ends the call before any part has spent its time
  case $part in
    env | tests | learner | trials | packing | collectors | pong | pipelines) ;;
    *)
      echo "checks.sh: unknown part $part; allowed: env tests learner trials packing collectors pong pipelines"
      exit 2
      ;;
  esac
done

if [ $dry = 0 ]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    wheels=$(cd .whl && ls -l -- *.whl)
    if [ "$(cat /tmp/site/.adl-wheels 2>/dev/null)" != "$wheels" ]; then  # a second call on the same machine skips it
      "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "checks.sh: the wheels in .whl/ did not install (see above)"; exit 1; }
      echo "$wheels" >/tmp/site/.adl-wheels
    fi
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "checks.sh: no wheels in .whl/ (build them with 'make gpu-wheels'); using what $py has"
  fi
  "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "checks.sh: torch sees no GPU here; 'checks.sh --dry-run' runs the parts on the CPU"
    exit 1
  }
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

missing() {  # the modules of "$@" this Python cannot find
  "$py" - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

summary=()
failed=0
step() {  # step NAME LIMIT "NEEDS" COMMAND...: the whole log to $out/NAME.log, its end here
  local name=$1 limit=$2 needs=$3
  shift 3
  local left=$((budget - (SECONDS - t_start)))
  if [ "$left" -lt 20 ]; then
    echo "== $name: NOT RUN: ${left}s left of this call's ${budget}s (CHECKS_BUDGET_S)"
    summary+=("$name NOT RUN (no time left)")
    failed=1
    return
  fi
  [ "$limit" -le "$left" ] || limit=$left
  local gone
  gone=$(missing $needs)
  if [ -n "$gone" ]; then
    echo "== $name: FAILED before it started: $py cannot import: $gone"
    echo "   Build the wheels where PyPI is reachable ('make gpu-wheels' or benchmarks/gpu_machine/wheels.sh)"
    echo "   and carry .whl/ with the checkout; docs/gpu_checks.md lists what the machine must have."
    summary+=("$name FAILED (missing: $gone)")
    failed=1
    return
  fi
  echo "== $name (at most ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=15 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.log"
  local took=$((SECONDS - t0)) verdict=ok
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    verdict="TIMED OUT (what it measured is in its JSON)"
  elif [ $rc != 0 ]; then
    verdict="FAILED (exit $rc; $out/$name.log)"
  fi
  [ "$verdict" = ok ] || failed=1
  echo "== $name: $verdict after ${took}s"
  summary+=("$name $verdict ${took}s")
}

# What each part runs: on the GPU, or (--dry-run) the same code path on the CPU, tiny.
cpu=()
[ $dry = 1 ] && cpu=(--device cpu --quick)
for part in "$@"; do
  case $part in
    env)
      if [ $dry = 1 ]; then
        step env 30 "" "$py" -c 'import torch; print(torch.__version__, "cuda:", torch.cuda.is_available())'
      else
        step env 30 "" bash -c "nvidia-smi; $py -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'"
      fi
      ;;
    tests)
      if [ $dry = 1 ]; then  # collected, not run (they need a GPU): every CUDA test module imports
        step tests 60 "gymnasium ale_py pytest" "$py" -m pytest --collect-only -q -p no:cacheprovider -m cuda tests/components
      else
        step tests 200 "gymnasium ale_py pytest" "$py" -m pytest -q -p no:cacheprovider -m cuda tests/components
      fi
      ;;
    learner)
      step learner 240 "gymnasium" "$py" benchmarks/bench_dqn_gpu.py "${cpu[@]}" --parts learner --seconds 2 --reps 3 \
        --out "$out/dqn_gpu_learner.json"
      ;;
    trials)
      step trials 300 "" "$py" benchmarks/bench_gpu_trials.py "${cpu[@]}" --seconds 2 --reps 3 --out "$out/gpu_trials.json"
      ;;
    packing)
      if [ $dry = 1 ]; then
        # One case: the LSTM trial's trainer is the trials part's (its only difference here).
        step packing 60 "ray" "$py" benchmarks/bench_gpu_packing.py "${cpu[@]}" --seconds 1 --cpus 1 \
          --cases ring8 --out "$out/gpu_packing.json"
      else
        step packing 200 "ray" "$py" benchmarks/bench_gpu_packing.py --seconds 10 --out "$out/gpu_packing.json"
      fi
      ;;
    collectors)
      if [ $dry = 1 ]; then
        step collectors 60 "ray gymnasium ale_py" "$py" benchmarks/bench_apex_collectors.py --quick --collectors 1 \
          --seconds 1 --warmup-s 0.5 --out "$out/apex_collectors.json"
      else
        step collectors 300 "ray gymnasium ale_py" "$py" benchmarks/bench_apex_collectors.py --inference local gpu \
          --collectors 1,4,8,14 --seconds 10 --warmup-s 5 --out "$out/apex_collectors.json"
      fi
      ;;
    pong)
      left=$((budget - (SECONDS - t_start)))
      run_s=$((left - 90))  # Ray's start, the replay's warm-up and the teardown fit in the other 90 s
      if [ $dry = 1 ]; then  # a fixed amount of work, past the replay's warm-up: some updates
        step pong 60 "ray gymnasium ale_py" "$py" benchmarks/bench_dqn_gpu.py "${cpu[@]}" --parts pong \
          --pong-budget-s 30 --pong-set max_env_steps=224 --out "$out/dqn_gpu_pong.json"
      elif [ $run_s -lt 60 ]; then
        echo "== pong: NOT RUN: ${left}s left of this call's ${budget}s; it needs at least 150"
        summary+=("pong NOT RUN (no time left)")
        failed=1
      else
        step pong 540 "ray gymnasium ale_py" "$py" benchmarks/bench_dqn_gpu.py --parts pong \
          --pong-budget-s "$run_s" --out "$out/dqn_gpu_pong.json"
      fi
      ;;
    pipelines)
      if [ $dry = 1 ]; then
        step pipelines 60 "ray mlflow gymnasium pytest" "$py" -m pytest --collect-only -q -p no:cacheprovider -m cuda tests/pipelines
      else
        step pipelines 400 "ray mlflow gymnasium pytest" "$py" -m pytest -q -p no:cacheprovider -m cuda tests/pipelines
      fi
      ;;
  esac
done

echo "== summary ($((SECONDS - t_start))s of ${budget}s; logs and results in $out):"
printf '   %s\n' "${summary[@]}"
exit $failed
