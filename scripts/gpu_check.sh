#!/usr/bin/env bash
# The GPU check, one command on a machine with one GPU (about 5 minutes; budget 8):
#   1. the gpu test tier: the tiny recipe in bf16 on NCCL, and a bf16 save, kill and resume;
#   2. forward/backward throughput of the policy at Qwen2.5-VL-7B widths (4 language layers,
#      2 vision blocks, bf16): tokens/s, TFLOP/s, MFU against the dense bf16 peak, peak memory.
#
#   bash scripts/gpu_check.sh
#
# Installs nothing from the network. Python: .venv if present, else python3 with the wheels
# in $VZERO_WHEELS (default .whl: `pip download --no-deps` of the pins it lacks) installed
# --no-index into a private folder. $VZERO_TEST_SHARDS may name tiny shards made earlier by
# `python tests/tiny_run.py DIR` (a node without data_prep's dependencies). Output also goes
# to $VZERO_GPU_CHECK_OUT (default runs/gpu_check).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${VZERO_GPU_CHECK_OUT:-runs/gpu_check}"
mkdir -p "$OUT_DIR"
PY=python3
[[ -x .venv/bin/python ]] && PY="$ROOT/.venv/bin/python"
WHEELS="${VZERO_WHEELS:-.whl}"
if [[ "$PY" == python3 ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE="${TMPDIR:-/tmp}/vzero-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$SITE"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

status=0
t0=$(date +%s)
timeout 330 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/gpu --timeout=300 -rA \
  >"$OUT_DIR/gpu_tier.log" 2>&1 || status=1
grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed|Error" "$OUT_DIR/gpu_tier.log" | tail -20
echo "[gpu_check] gpu tier: $([[ $status -eq 0 ]] && echo ok || echo FAILED) in $(( $(date +%s) - t0 )) s"

t0=$(date +%s)
timeout 180 "$PY" -m vzero_nemo.bench.step --size 7b --layers 4 --batch 8 --seq 1024 \
  --steps 10 --json "$OUT_DIR/step_7b.json" 2>"$OUT_DIR/step_7b.err" || status=1
echo "[gpu_check] 7B-width step benchmark in $(( $(date +%s) - t0 )) s"
exit $status
