#!/usr/bin/env bash
# Per-node launcher: `srun` starts one per node (see slurm/common.sh); it runs torchrun and
# passes Slurm's early-warning USR1 on to the training processes.
#
#   srun --ntasks-per-node=1 bash slurm/node_launch.sh python -m torch.distributed.run ... \
#       -m vzero_nemo.train --recipe NAME key=value ...
#
# Why a wrapper: torchrun does not handle USR1 (its default action would kill torchrun and
# orphan the workers), and for the signals it does handle it stops the workers with a fixed
# 30 s grace, too short for a large checkpoint. Its workers also run in their own sessions, so
# a signal sent to this step's process group never reaches them. So torchrun starts with USR1
# ignored (inherited through exec; the trainer installs its own handler), and this wrapper
# sends USR1 to torchrun's children, the workers, itself. The signal is repeated every
# VZERO_RESIGNAL_S seconds (default 10) until torchrun exits, in case a worker had not yet
# installed its handler; the trainer's handler only records the request, so repeats are
# harmless. The exit status is torchrun's.
set -uo pipefail

(($# > 0)) || {
  echo "usage: bash slurm/node_launch.sh COMMAND [ARG...]" >&2
  exit 2
}
resignal_s="${VZERO_RESIGNAL_S:-10}"
[[ "$resignal_s" =~ ^[1-9][0-9]*$ ]] || {
  echo "error: VZERO_RESIGNAL_S='$resignal_s' is not a positive integer" >&2
  exit 2
}

trap '' USR1
"$@" &
child=$!
stop_requested=0
trap 'stop_requested=1' USR1

next_signal_s=0
while kill -0 "$child" 2>/dev/null; do
  if ((!stop_requested)); then
    wait "$child" # returns early when the USR1 trap runs
    continue
  fi
  if ((SECONDS >= next_signal_s)); then
    echo "node_launch[$(hostname -s)]: USR1 -> workers of torchrun (pid $child)" >&2
    pkill -USR1 -P "$child" || true
    next_signal_s=$((SECONDS + resignal_s))
  fi
  sleep 1
done
wait "$child"
