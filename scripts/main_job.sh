#!/usr/bin/env bash
# The main job: the tiny CPU recipe end to end (data -> pre-training -> self-play -> report).
#
#   bash scripts/main_job.sh            # report in runs/tiny_cpu/ (times: main_job_times.json)
#   bash scripts/main_job.sh --long     # the longer learning run (runs/tiny_cpu_long/)
#
# Creates/reuses the venv first (scripts/setup_env.sh). Extra key=value words are passed to
# the self-play run as config overrides.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
export WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$ROOT/.venv/bin/python" -m vzero_nemo.main_job "$@"
