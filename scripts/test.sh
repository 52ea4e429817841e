#!/usr/bin/env bash
# Run the project's checks: ruff, then every CPU test tier, each timed.
#
#   bash scripts/test.sh                 # all tiers: unit, distributed, widths, functional,
#                                        # learning, slurm, gpu, browser, benchmarks
#   bash scripts/test.sh unit            # one or more named tiers
#
# Creates/reuses the venv first (scripts/setup_env.sh). The gpu tier skips itself without
# CUDA. The browser tier needs Debian's chromium (.ci/run installs it when absent; ~4 min);
# the benchmarks tier first creates/reuses the lmms-eval venv (scripts/setup_lmms_env.sh;
# ~5 min, plus the one-time install). Exit status is non-zero if lint or any tier fails.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh || exit 1
PY="$ROOT/.venv/bin/python"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" WANDB_MODE="${WANDB_MODE:-offline}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

TIERS=("$@")
[[ ${#TIERS[@]} -eq 0 ]] && TIERS=(unit distributed widths functional learning slurm gpu browser benchmarks)

declare -a SUMMARY
status=0
start=$(date +%s)
if "$PY" -m ruff check . && "$PY" -m ruff format --check . >/dev/null; then
  SUMMARY+=("lint: ok")
else
  "$PY" -m ruff format --check . | head -20
  SUMMARY+=("lint: FAILED"); status=1
fi

for tier in "${TIERS[@]}"; do
  t0=$(date +%s)
  if [[ $tier == benchmarks ]] && ! timeout 1800 bash scripts/setup_lmms_env.sh; then
    SUMMARY+=("tier $tier: FAILED (lmms-eval venv setup)"); status=1; continue
  fi
  "$PY" -m pytest -m "$tier" -q -p no:cacheprovider --timeout=900
  rc=$?
  # 5 = no tests collected for this tier: not a failure of the tier.
  if [[ $rc -eq 0 || $rc -eq 5 ]]; then result=ok; else result="FAILED (rc=$rc)"; status=1; fi
  SUMMARY+=("tier $tier: $result in $(( $(date +%s) - t0 )) s")
done

echo "==== summary (total $(( $(date +%s) - start )) s)"
printf '%s\n' "${SUMMARY[@]}"
exit $status
