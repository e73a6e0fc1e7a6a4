#!/usr/bin/env bash
# The GPU check: on a machine with one or more CUDA GPUs, in the project's installed environment, run
#   1. the GPU tests and the compile, mixed-precision, checkpointing and FSDP tests (slow ones included),
#   2. the overhead benchmark on the GPU, eager and compiled,
#   3. the default recipe on one GPU in bf16-mixed precision,
#   4. the default recipe under DDP on every GPU present,
# and print one markdown table (also written to $OUT/gpu_check.md, $OUT defaults to gpu_check_out/).
#
# Usage (from the repository root, after the README's test install):
#   bash benchmarks/gpu_check.sh            # everything, a few minutes on one GPU
#   QUICK=1 bash benchmarks/gpu_check.sh    # fewer benchmark repeats
# Exit status: 0 when every step passed, 1 when one failed, 2 when there is no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check_out}
mkdir -p "$out"
py=${PYTHON:-python}

if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is False); nothing to check." >&2
  exit 2
fi
card=$("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())')
versions=$("$py" -c 'import torch, lightning; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, lightning {lightning.__version__}")')
repeats=5; [[ -n ${QUICK:-} ]] && repeats=2

rows=()
failed=0
# step NAME LOGFILE COMMAND...: run, time, record pass/fail and the log's last meaningful line.
step() {
  local name=$1 log=$out/$2; shift 2
  local start=$SECONDS
  echo "== $name: $*"
  "$@" >"$log" 2>&1
  local rc=$? seconds=$((SECONDS - start))
  local status=pass; ((rc == 0)) || { status="FAIL (exit $rc)"; failed=1; }
  local last
  last=$(grep -E "passed|failed|skipped|test/acc|test/loss|error|Error" "$log" | tail -n 1 | tr '|' '/' | cut -c1-110)
  rows+=("| $name | $status | $seconds | ${last:-see $log} |")
  echo "   $status in ${seconds}s (log: $log)"
}

step "GPU tests" gpu_tests.log "$py" -m pytest -q -rs -m "" tests \
  -k "gpu or cuda or compile or bf16 or precision or checkpoint or fsdp"
step "overhead, eager" overhead_eager.log "$py" benchmarks/overhead.py --accelerator gpu --clock wall \
  --method separate --repeats "$repeats" --out "$out/overhead_eager.md"
step "overhead, compiled" overhead_compiled.log "$py" benchmarks/overhead.py --accelerator gpu --clock wall \
  --method separate --compiled only --repeats "$repeats" --out "$out/overhead_compiled.md"
step "recipe, 1 GPU, bf16-mixed" recipe_bf16.log "$py" recipes/train.py trainer=gpu \
  ++trainer.precision=bf16-mixed logger=csv hydra.run.dir="$out/recipe_bf16"
step "recipe, DDP on $gpus GPU(s)" recipe_ddp.log "$py" recipes/train.py trainer=ddp trainer.devices="$gpus" \
  logger=csv hydra.run.dir="$out/recipe_ddp"

{
  echo "GPU check on $gpus x $card ($versions), $(date -u +%Y-%m-%d)"
  echo
  echo "| step | result | seconds | last line of its log |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  for table in overhead_eager overhead_compiled; do
    [[ -f $out/$table.md ]] && { echo; echo "$table:"; echo; cat "$out/$table.md"; }
  done
} | tee "$out/gpu_check.md"
exit $failed
