#!/usr/bin/env bash
# Vision-Zero self-play, tiny CPU recipe, over Slurm: 2 nodes x VZERO_NPROC_PER_NODE processes,
# gloo, no container. The same launcher as the GPU scripts (slurm/common.sh) in CPU mode; the
# Slurm test tier (tests/slurm/) runs it on a local cluster (scripts/local_slurm.sh).
#
#   python -m data_prep generate --domain clevr ... --out runs/tiny_cpu/data   # shards first
#   sbatch slurm/vzero_tiny_cpu.sh                                     # 2 nodes x 1 process
#   VZERO_NPROC_PER_NODE=2 sbatch --nodes=1 slurm/vzero_tiny_cpu.sh train.iterations=4
#   sbatch slurm/vzero_tiny_cpu.sh --dry-run 'logging.run_name=my run'
#
# Arguments after the script are trainer overrides passed verbatim to `python -m
# vzero_nemo.train`. Like the GPU scripts it saves on USR1 and requeues itself until the
# recipe's iterations are done.
#SBATCH --job-name=vzero_tiny_cpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=00:30:00
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append

# ---- CONFIG (every value can be set in the environment before sbatch) ----
RECIPE="${VZERO_RECIPE:-tiny_cpu}"
export VZERO_DEVICE=cpu  # gloo, no container, VZERO_NPROC_PER_NODE processes per node (default 1)
export VZERO_DATA_DIR="${VZERO_DATA_DIR:-$PWD/runs/tiny_cpu/data}"
export VZERO_RUN_DIR="${VZERO_RUN_DIR:-$PWD/runs/$RECIPE-$SLURM_JOB_ID}"  # named for the recipe
export VZERO_CKPT_DIR="${VZERO_CKPT_DIR:-$VZERO_RUN_DIR/checkpoints}"

# ---- launch ----
export VZERO_ROOT="${VZERO_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
[[ -f "$VZERO_ROOT/slurm/common.sh" ]] || {
  echo "error: $VZERO_ROOT/slurm/common.sh not found; submit from the repository root or set VZERO_ROOT" >&2
  exit 1
}
source "$VZERO_ROOT/slurm/common.sh"
vzero_train "$RECIPE" "$@"
