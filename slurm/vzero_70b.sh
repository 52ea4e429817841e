#!/usr/bin/env bash
# Vision-Zero self-play on Qwen2.5-VL-72B: 8 nodes x 8 GPUs (recipe qwen25vl_72b_8n8g).
#
#   cd vzero_nemo && sbatch slurm/vzero_70b.sh                         # the recipe as is
#   sbatch --nodes=16 slurm/vzero_70b.sh parallel.tensor_model_parallel_size=8 train.lr=5e-6
#   VZERO_RUN_DIR=/lustre/runs/qwen25vl_72b_8n8g-123 sbatch slurm/vzero_70b.sh  # resume a finished job's run
#   sbatch slurm/vzero_70b.sh --dry-run                                # print the resolved config
#
# Arguments after the script are trainer overrides (key=value) passed verbatim to
# `python -m vzero_nemo.train`. The job saves and requeues itself before its time limit until
# the recipe's iterations are done (slurm/common.sh explains how). More nodes = more data
# parallelism; the recipe's TP x PP must divide nodes x 8.
#SBATCH --job-name=vzero_70b
#SBATCH --nodes=8
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@900
#SBATCH --requeue
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append

# ---- CONFIG (every value can be set in the environment before sbatch) ----
RECIPE="${VZERO_RECIPE:-qwen25vl_72b_8n8g}"
export VZERO_IMAGE="${VZERO_IMAGE:-nvcr.io/nvidia/nemo:26.08}"
export VZERO_LAUNCH="${VZERO_LAUNCH:-container}"  # or venv: $VZERO_VENV/bin/python on the host
export VZERO_DATA_DIR="${VZERO_DATA_DIR:-/data/vzero/clevr}"
export VZERO_HF_PATH="${VZERO_HF_PATH:-/checkpoints/Qwen2.5-VL-72B-Instruct}"
export VZERO_RUN_DIR="${VZERO_RUN_DIR:-$PWD/runs/$RECIPE-$SLURM_JOB_ID}"  # named for the recipe
export VZERO_CKPT_DIR="${VZERO_CKPT_DIR:-$VZERO_RUN_DIR/checkpoints}"
export VZERO_EXTRA_MOUNTS="${VZERO_EXTRA_MOUNTS:-}"  # more pyxis mounts: src:dst[,src:dst]

# ---- launch ----
export VZERO_ROOT="${VZERO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
[[ -f "$VZERO_ROOT/slurm/common.sh" ]] || {
  echo "error: $VZERO_ROOT/slurm/common.sh not found; submit from the repository root or set VZERO_ROOT" >&2
  exit 1
}
source "$VZERO_ROOT/slurm/common.sh"
vzero_train "$RECIPE" "$@"
