#!/usr/bin/env bash
# Generate a pair set as a Slurm array: each array task writes one range of shards, then a
# dependent job finalizes (manifest.json + energon metadata) and verifies the set.
#
#   # submit everything (array sized from the counts below + the dependent finalize job):
#   VZERO_DATA_DOMAIN=clevr VZERO_DATA_NUM_PAIRS=100000 VZERO_DATA_OUT=/data/vz/clevr \
#     VZERO_DATA_SEED=0 bash slurm/data_prep.sh --opt width=320 --opt height=240
#
#   # or submit the array yourself (ceil(shards / shards per task) tasks); the last task to
#   # finish finalizes by itself (generate's automatic finalize, serialized by a lock):
#   VZERO_DATA_DOMAIN=chart ... sbatch --array=0-99 slurm/data_prep.sh
#
# Every task is safe to rerun: complete shards (checksum matches their manifest part) are
# skipped, partial ones are rewritten, so resubmitting the same command after a failure or
# preemption finishes the set. Arguments after the script go verbatim ("$@") to
# `python -m data_prep generate` (e.g. --opt key=value, --generators MODULE).
#
# Environment (all VZERO_DATA_*; the first four are required):
#   DOMAIN, NUM_PAIRS, OUT, SEED   what to generate and where
#   PAIRS_PER_SHARD (100), SHARDS_PER_TASK (10), VAL_FRACTION (0.1),
#   ENERGON (1: write megatron-energon metadata; 0: only manifest.json, for PairReader)
# and VZERO_ROOT (repository root; default: the submit directory), PYTHON (default: python).
#SBATCH --job-name=vzero_data_prep
#SBATCH --array=0-9
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=%x-%A_%a.out

set -euo pipefail

export VZERO_ROOT="${VZERO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
[[ -f "$VZERO_ROOT/slurm/common.sh" ]] || {
  echo "error: $VZERO_ROOT/slurm/common.sh not found; run from the repository root or set VZERO_ROOT" >&2
  exit 1
}
# shellcheck source=slurm/common.sh
source "$VZERO_ROOT/slurm/common.sh"
cd "$VZERO_ROOT"

PYTHON="${PYTHON:-python}"
DOMAIN="${VZERO_DATA_DOMAIN:?set VZERO_DATA_DOMAIN (clevr, chart or real)}"
NUM_PAIRS="${VZERO_DATA_NUM_PAIRS:?set VZERO_DATA_NUM_PAIRS}"
OUT="${VZERO_DATA_OUT:?set VZERO_DATA_OUT (output folder)}"
SEED="${VZERO_DATA_SEED:?set VZERO_DATA_SEED}"
PAIRS_PER_SHARD="${VZERO_DATA_PAIRS_PER_SHARD:-100}"
SHARDS_PER_TASK="${VZERO_DATA_SHARDS_PER_TASK:-10}"
VAL_FRACTION="${VZERO_DATA_VAL_FRACTION:-0.1}"
ENERGON_FLAG=()
case "${VZERO_DATA_ENERGON:-1}" in
  1) ;;
  0) ENERGON_FLAG=(--no-energon) ;;
  *) vzero_die "VZERO_DATA_ENERGON='${VZERO_DATA_ENERGON}' must be 1 (write energon metadata) or 0" ;;
esac

for name in NUM_PAIRS SEED PAIRS_PER_SHARD SHARDS_PER_TASK; do
  [[ "${!name}" =~ ^[0-9]+$ ]] || vzero_die "VZERO_DATA_$name='${!name}' is not a non-negative integer"
done
((NUM_PAIRS > 0 && PAIRS_PER_SHARD > 0 && SHARDS_PER_TASK > 0)) ||
  vzero_die "VZERO_DATA_NUM_PAIRS, _PAIRS_PER_SHARD and _SHARDS_PER_TASK must be > 0"
NUM_SHARDS=$(((NUM_PAIRS + PAIRS_PER_SHARD - 1) / PAIRS_PER_SHARD))
NUM_TASKS=$(((NUM_SHARDS + SHARDS_PER_TASK - 1) / SHARDS_PER_TASK))
WORKERS="${SLURM_CPUS_PER_TASK:-1}"

if [[ "${VZERO_DATA_STEP:-}" == finalize ]]; then
  # The dependent step (a one-task array, so the header's --array is overridden).
  cmd=("$PYTHON" -m data_prep finalize "$OUT" --val-fraction "$VAL_FRACTION" --workers "$WORKERS"
    "${ENERGON_FLAG[@]}")
  vzero_print_cmd "${cmd[@]}"
  "${cmd[@]}"
  vzero_print_cmd "$PYTHON" -m data_prep verify "$OUT"
  exec "$PYTHON" -m data_prep verify "$OUT" --workers "$WORKERS"
elif [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # One array task: shards [task * SHARDS_PER_TASK, +SHARDS_PER_TASK) clipped to the set.
  FIRST=$((SLURM_ARRAY_TASK_ID * SHARDS_PER_TASK))
  LAST=$((FIRST + SHARDS_PER_TASK < NUM_SHARDS ? FIRST + SHARDS_PER_TASK : NUM_SHARDS))
  if ((FIRST >= NUM_SHARDS)); then
    vzero_log "task $SLURM_ARRAY_TASK_ID: no shards (the set has $NUM_SHARDS); nothing to do"
    exit 0
  fi
  cmd=("$PYTHON" -m data_prep generate --domain "$DOMAIN" --num-pairs "$NUM_PAIRS"
    --out "$OUT" --seed "$SEED" --pairs-per-shard "$PAIRS_PER_SHARD"
    --shard-range "$FIRST:$LAST" --workers "$WORKERS" --val-fraction "$VAL_FRACTION"
    "${ENERGON_FLAG[@]}" "$@")
  vzero_print_cmd "${cmd[@]}"
  exec "${cmd[@]}"
else
  # Submit mode (run with bash, outside a job): the array, then finalize after it succeeds.
  command -v sbatch >/dev/null || vzero_die "sbatch not found; run this on a Slurm login node"
  script="$VZERO_ROOT/slurm/data_prep.sh"
  array_id="$(sbatch --parsable --array="0-$((NUM_TASKS - 1))" --export=ALL "$script" "$@")"
  array_id="${array_id%%;*}"
  final_id="$(VZERO_DATA_STEP=finalize sbatch --parsable --array=0 --job-name=vzero_data_finalize \
    --dependency="afterok:$array_id" --export=ALL "$script")"
  vzero_log "submitted array job $array_id ($NUM_TASKS tasks, $NUM_SHARDS shards) and finalize job ${final_id%%;*}"
fi
