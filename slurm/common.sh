# shellcheck shell=bash
# Shared launcher for the vzero_nemo sbatch scripts (sourced, never run directly).
#
#   sbatch slurm/vzero_70b.sh [--dry-run] [key=value ...]     # from the repository root
#
# An sbatch script sets its #SBATCH header and a CONFIG block, sources this file and calls
# `vzero_train RECIPE "$@"`. That function:
#   1. turns the CONFIG environment (VZERO_DATA_DIR, VZERO_HF_PATH, VZERO_RUN_DIR,
#      VZERO_CKPT_DIR, VZERO_DEVICE) into `key=value` overrides placed BEFORE the user's own,
#      so an override on the sbatch command line always wins;
#   2. checks the input paths that exist outside the trainer (data, HF checkpoint) before any
#      node starts a container or a Python process;
#   3. runs one torchrun per node through `srun` (NGC NeMo container via pyxis/enroot, or a
#      venv with VZERO_LAUNCH=venv), rendezvous c10d on the first node of the allocation;
#   4. continues the run across jobs: `#SBATCH --signal=B:USR1@<s>` makes Slurm signal this
#      shell before the time limit; the trap forwards USR1 to the trainers (via srun and
#      slurm/node_launch.sh), which finish the current iteration, save and exit 0. The shell
#      then reads `<logging.dir>/run_state.json` and, if the recipe's iterations are not all
#      done, requeues THIS job (`scontrol requeue $SLURM_JOB_ID`): same job id, same argv and
#      environment, SLURM_RESTART_COUNT + 1, resume from the latest checkpoint. Requeue rather
#      than a chain of dependent jobs: one job id per run, no dependency bookkeeping, and
#      Slurm's own requeues (node failure) take the same path.
#
# Overrides travel as separate argv words from sbatch to Python: only "$@" and arrays, never
# eval or unquoted expansion. Trainer flags (words starting with --, e.g. --dry-run) are placed
# before all overrides. The launch command is printed with printf %q before it runs.
#
# Logs: Slurm's --output (%x-%j.out, opened in append mode) gets one line per restart that
# points to that restart's full log, `<VZERO_LOG_DIR>/<job name>-<job id>-restart<N>.log`,
# so no restart overwrites another's log.
#
# Environment (the sbatch scripts' CONFIG blocks set the usual ones):
#   VZERO_ROOT            repository root (default: the submit directory)
#   VZERO_DEVICE          gpu (default) or cpu (gloo, no container, for tests and laptops)
#   VZERO_LAUNCH          container (GPU default: VZERO_IMAGE through pyxis) or venv
#   VZERO_VENV            venv for VZERO_LAUNCH=venv (default $VZERO_ROOT/.venv)
#   VZERO_NPROC_PER_NODE  processes per node (GPU: SLURM_GPUS_ON_NODE or 8; CPU: 1)
#   VZERO_DATA_DIR, VZERO_HF_PATH, VZERO_RUN_DIR, VZERO_CKPT_DIR -> data.path,
#                         model.hf_path, logging.dir, checkpoint.dir (mounted in the container)
#   VZERO_LOG_DIR         per-restart logs (default $VZERO_RUN_DIR/logs)
#   VZERO_EXTRA_MOUNTS    more pyxis mounts, src:dst[,src:dst]
#   VZERO_MASTER_ADDR, VZERO_RDZV_PORT   rendezvous address/port (default: first node's
#                         NodeAddr, 20000 + job id % 10000)
#   VZERO_MAX_RESTARTS    requeue limit (default 50); VZERO_RESIGNAL_S see node_launch.sh
#
# The helper functions below (vzero_die, vzero_log, vzero_print_cmd, vzero_head_node,
# vzero_srun_prefix, vzero_run_step) take no training-specific input; other job scripts
# (e.g. data preparation) may source this file and use them.

# ------------------------------------------------------------------ generic helpers

# Errors also go to Slurm's own output file once stdout points at a per-restart log.
vzero_die() {
  echo "error: $*" >&2
  [[ -n "${VZERO_SLURM_OUT_FD:-}" ]] && echo "error: $*" >&"$VZERO_SLURM_OUT_FD"
  exit 1
}

vzero_log() { echo "[vzero $(date '+%F %T')] $*"; }

# A log line that also goes to Slurm's own output file (the outcome of a restart).
vzero_notice() {
  vzero_log "$@"
  [[ -n "${VZERO_SLURM_OUT_FD:-}" ]] && vzero_log "$@" >&"$VZERO_SLURM_OUT_FD"
  return 0
}

# Print a command with every word shell-quoted, so the log shows exactly what runs.
vzero_print_cmd() {
  local out
  printf -v out '%q ' "$@"
  echo "+ ${out% }"
}

vzero_require_slurm() {
  [[ -n "${SLURM_JOB_ID:-}" ]] || vzero_die "not inside a Slurm job; submit with: sbatch $0"
}

# First node of the allocation and the address other nodes reach it at (NodeAddr, which
# equals the node name on most clusters). Sets VZERO_HEAD_NODE and VZERO_HEAD_ADDR.
vzero_head_node() {
  VZERO_HEAD_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"
  [[ -n "$VZERO_HEAD_NODE" ]] || vzero_die "cannot expand SLURM_JOB_NODELIST='$SLURM_JOB_NODELIST'"
  if [[ -n "${VZERO_MASTER_ADDR:-}" ]]; then
    VZERO_HEAD_ADDR="$VZERO_MASTER_ADDR"
  else
    VZERO_HEAD_ADDR="$(scontrol -o show node "$VZERO_HEAD_NODE" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)"
    VZERO_HEAD_ADDR="${VZERO_HEAD_ADDR:-$VZERO_HEAD_NODE}"
  fi
}

# Build the array VZERO_SRUN: `srun` with one task per node over the whole allocation, inside
# the container (VZERO_LAUNCH=container) or on the host (venv). Mounts: VZERO_MOUNT_PATHS
# (array of host paths, mounted at the same path) plus VZERO_EXTRA_MOUNTS (pyxis syntax).
vzero_srun_prefix() {
  VZERO_SRUN=(srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1)
  # srun does not inherit sbatch's CPU count in 22.05+: give the one task all CPUs of its
  # node, otherwise torchrun and all its workers may be bound to a single core.
  [[ -n "${SLURM_CPUS_ON_NODE:-}" ]] && VZERO_SRUN+=(--cpus-per-task="$SLURM_CPUS_ON_NODE")
  case "$VZERO_LAUNCH" in
    venv) ;;
    container)
      srun --help 2>&1 | grep -q -- '--container-image' ||
        vzero_die "VZERO_LAUNCH=container needs the pyxis srun plugin, which this cluster lacks; use VZERO_LAUNCH=venv"
      [[ -n "${VZERO_IMAGE:-}" ]] || vzero_die "VZERO_LAUNCH=container needs VZERO_IMAGE (e.g. nvcr.io/nvidia/nemo:26.08)"
      local mounts=() path
      for path in "${VZERO_MOUNT_PATHS[@]}"; do
        [[ "$path" == /* ]] || path="$PWD/$path"
        [[ "$path" != *[,:]* ]] || vzero_die "cannot mount '$path': pyxis mount paths may not contain ',' or ':'"
        mounts+=("$path:$path")
      done
      [[ -n "${VZERO_EXTRA_MOUNTS:-}" ]] && mounts+=("$VZERO_EXTRA_MOUNTS")
      VZERO_SRUN+=(--container-image="$VZERO_IMAGE" --no-container-mount-home
        --container-workdir="$PWD" --container-mounts="$(IFS=,; echo "${mounts[*]}")")
      ;;
    *) vzero_die "VZERO_LAUNCH='$VZERO_LAUNCH' is not one of: container, venv" ;;
  esac
}

# Record Slurm's early-warning USR1 before any step runs (bash would otherwise die of it).
vzero_trap_usr1_early() {
  VZERO_GOT_USR1=0
  trap 'VZERO_GOT_USR1=1; vzero_log "USR1 received before the training step started"' USR1
}

# Run `srun ...` in the background and wait for it, forwarding USR1 (Slurm's early-warning
# signal) to it; srun passes it on to every task. Returns srun's exit status. Sets
# VZERO_GOT_USR1=1 if the signal arrived (also before this step, see vzero_trap_usr1_early).
vzero_run_step() {
  local step_pid rc
  "$@" &
  step_pid=$!
  # shellcheck disable=SC2064  # expand step_pid now: the trap must target this step
  trap "VZERO_GOT_USR1=1; vzero_log 'USR1 received: asking the trainers to save and stop'; kill -USR1 $step_pid 2>/dev/null" USR1
  if ((${VZERO_GOT_USR1:-0})); then
    vzero_log "USR1 arrived earlier: asking the trainers to save and stop"
    kill -USR1 "$step_pid" 2>/dev/null
  fi
  while :; do
    wait "$step_pid"
    rc=$?
    # `wait` also returns (status > 128) when a trapped signal interrupts it.
    kill -0 "$step_pid" 2>/dev/null || break
  done
  trap - USR1
  return "$rc"
}

# Value of the LAST `key=value` word for KEY among the remaining arguments (the trainer
# applies overrides in order, so the last one wins), or empty.
vzero_override_value() {
  local key="$1" word value=""
  shift
  for word in "$@"; do
    [[ "$word" == "$key="* ]] && value="${word#"$key="}"
  done
  printf '%s' "$value"
}

# Read `iteration`, `iterations` and `complete` from run_state.json (flat JSON written by the
# trainer) into VZERO_STATE_ITERATION, VZERO_STATE_ITERATIONS, VZERO_STATE_COMPLETE.
vzero_read_run_state() {
  local file="$1" json
  json="$(tr -d ' \t\r\n' <"$file")" || return 1
  [[ "$json" =~ \"iteration\":([0-9]+) ]] || return 1
  VZERO_STATE_ITERATION="${BASH_REMATCH[1]}"
  [[ "$json" =~ \"iterations\":([0-9]+) ]] || return 1
  VZERO_STATE_ITERATIONS="${BASH_REMATCH[1]}"
  [[ "$json" =~ \"complete\":(true|false) ]] || return 1
  VZERO_STATE_COMPLETE="${BASH_REMATCH[1]}"
}

# ------------------------------------------------------------------ GPU environment

vzero_gpu_env() {
  # Each variable keeps a value the site or user already exported.
  # Megatron's TP/SP communication overlap relies on kernels being issued in program order.
  export CUDA_DEVICE_MAX_CONNECTIONS="${CUDA_DEVICE_MAX_CONNECTIONS:-1}"
  # A failed or hung collective aborts the job at the NCCL timeout instead of idling to the time limit.
  export TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}"
  # Free the buffers of async collectives when they finish, not at the next allocator sync (lower peak memory).
  export TORCH_NCCL_AVOID_RECORD_STREAMS="${TORCH_NCCL_AVOID_RECORD_STREAMS:-1}"
  # Transport and topology errors reach the log, per-call chatter does not.
  export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
  # Rollout lengths vary every iteration; expandable segments avoid fragmentation OOMs.
  export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
  # NCCL_SOCKET_IFNAME / NCCL_IB_HCA are site-specific: export them before sbatch if needed.
}

# ------------------------------------------------------------------ training launcher

# Split the user's words into trainer flags (`--dry-run`) and `key=value` overrides, and put
# the overrides derived from the CONFIG environment BEFORE the user's, so the user's win.
# Sets VZERO_FLAGS, VZERO_ARGS (all overrides, in order) and VZERO_DRY_RUN.
vzero_trainer_args() {
  local device="$1" word
  shift
  VZERO_FLAGS=()
  VZERO_DRY_RUN=0
  local overrides=()
  for word in "$@"; do
    if [[ "$word" == --* ]]; then
      VZERO_FLAGS+=("$word")
      [[ "$word" == --dry-run ]] && VZERO_DRY_RUN=1
    else
      overrides+=("$word")
    fi
  done
  VZERO_ARGS=(logging.dir="${VZERO_RUN_DIR:-$VZERO_ROOT/runs/${SLURM_JOB_NAME}-${SLURM_JOB_ID}}")
  [[ -n "${VZERO_CKPT_DIR:-}" ]] && VZERO_ARGS+=(checkpoint.dir="$VZERO_CKPT_DIR")
  [[ -n "${VZERO_DATA_DIR:-}" ]] && VZERO_ARGS+=(data.path="$VZERO_DATA_DIR")
  [[ -n "${VZERO_HF_PATH:-}" ]] && VZERO_ARGS+=(model.hf_path="$VZERO_HF_PATH")
  [[ "$device" == cpu ]] && VZERO_ARGS+=(parallel.backend=gloo)
  VZERO_ARGS+=("${overrides[@]}")
}

# After a successful training step: finish if run_state.json says the run is complete, else
# requeue this job (guarded against runs that make no progress or restart forever).
vzero_complete_or_requeue() {
  local state_file="$1" start_iteration="$2" restart="$3"
  [[ -f "$state_file" ]] || vzero_die "the trainer exited 0 but wrote no $state_file"
  vzero_read_run_state "$state_file" || vzero_die "cannot parse $state_file"
  local progress="$VZERO_STATE_ITERATION/$VZERO_STATE_ITERATIONS iterations"
  if [[ "$VZERO_STATE_COMPLETE" == true ]]; then
    vzero_notice "run complete: $progress"
    return 0
  fi
  ((VZERO_STATE_ITERATION > start_iteration)) ||
    vzero_die "no progress in this job (at $progress, started at $start_iteration); not requeued. Give the job more time or an earlier --signal"
  local max_restarts="${VZERO_MAX_RESTARTS:-50}"
  ((restart < max_restarts)) ||
    vzero_die "reached VZERO_MAX_RESTARTS=$max_restarts at $progress; resubmit with VZERO_RUN_DIR=${state_file%/*} to continue"
  vzero_notice "stopped at $progress (USR1 received: $VZERO_GOT_USR1); requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID" || vzero_die "scontrol requeue $SLURM_JOB_ID failed (was the job submitted with --requeue?)"
}

# vzero_train RECIPE [trainer args...]: the whole job (see the header of this file).
vzero_train() {
  local recipe="$1"
  shift
  vzero_require_slurm
  vzero_trap_usr1_early
  [[ -n "$recipe" ]] || vzero_die "no recipe given to vzero_train"
  [[ -n "${VZERO_ROOT:-}" ]] || vzero_die "VZERO_ROOT must be set by the sbatch script"
  local root="$VZERO_ROOT" device="${VZERO_DEVICE:-gpu}" nproc python
  local restart="${SLURM_RESTART_COUNT:-0}"

  case "$device" in
    gpu)
      VZERO_LAUNCH="${VZERO_LAUNCH:-container}"
      nproc="${VZERO_NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}"
      ;;
    cpu)
      VZERO_LAUNCH="${VZERO_LAUNCH:-venv}"
      [[ "$VZERO_LAUNCH" == venv ]] || vzero_die "VZERO_DEVICE=cpu runs without a container; unset VZERO_LAUNCH or set it to venv"
      nproc="${VZERO_NPROC_PER_NODE:-1}"
      ;;
    *) vzero_die "VZERO_DEVICE='$device' is not one of: gpu, cpu" ;;
  esac
  [[ "$nproc" =~ ^[1-9][0-9]*$ ]] || vzero_die "processes per node '$nproc' is not a positive integer (VZERO_NPROC_PER_NODE)"

  vzero_trainer_args "$device" "$@"
  local run_dir data_dir hf_path ckpt_dir
  run_dir="$(vzero_override_value logging.dir "${VZERO_ARGS[@]}")"
  data_dir="$(vzero_override_value data.path "${VZERO_ARGS[@]}")"
  hf_path="$(vzero_override_value model.hf_path "${VZERO_ARGS[@]}")"
  ckpt_dir="$(vzero_override_value checkpoint.dir "${VZERO_ARGS[@]}")"

  # Inputs that live outside the trainer are checked before any node starts work.
  if ((!VZERO_DRY_RUN)); then
    [[ -z "$data_dir" || -d "$data_dir" ]] ||
      vzero_die "data.path='$data_dir' is not a directory; run slurm/data_prep.sh first or set VZERO_DATA_DIR"
    [[ -z "$hf_path" || -d "$hf_path" ]] ||
      vzero_die "model.hf_path='$hf_path' is not a directory; set VZERO_HF_PATH to a local Hugging Face checkpoint"
  fi
  mkdir -p "$run_dir" || vzero_die "cannot create the run directory '$run_dir' (VZERO_RUN_DIR)"
  local log_dir="${VZERO_LOG_DIR:-$run_dir/logs}"
  mkdir -p "$log_dir" || vzero_die "cannot create the log directory '$log_dir' (VZERO_LOG_DIR)"
  local log="$log_dir/${SLURM_JOB_NAME}-${SLURM_JOB_ID}-restart${restart}.log"
  vzero_log "job $SLURM_JOB_ID restart $restart: log in $log"
  exec {VZERO_SLURM_OUT_FD}>&1
  exec >>"$log" 2>&1

  vzero_log "job $SLURM_JOB_ID restart $restart on $SLURM_JOB_NODELIST; recipe $recipe; run dir $run_dir"
  git -C "$root" rev-parse HEAD >/dev/null 2>&1 && vzero_log "code $(git -C "$root" rev-parse HEAD) in $root"
  local state_file="$run_dir/run_state.json" start_iteration=0
  if [[ -f "$state_file" ]]; then
    vzero_read_run_state "$state_file" || vzero_die "cannot parse $state_file"
    start_iteration="$VZERO_STATE_ITERATION"
    if [[ "$VZERO_STATE_COMPLETE" == true ]] && ((!VZERO_DRY_RUN)); then
      vzero_notice "run already complete ($VZERO_STATE_ITERATION/$VZERO_STATE_ITERATIONS iterations) in $run_dir"
      return 0
    fi
    vzero_log "resuming at iteration $start_iteration/$VZERO_STATE_ITERATIONS"
  fi

  # The code under $root is the one that runs, also when another copy is installed.
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  if [[ "$device" == gpu ]]; then
    vzero_gpu_env
  else
    export CUDA_VISIBLE_DEVICES=""
  fi
  if [[ "$VZERO_LAUNCH" == venv ]]; then
    python="${VZERO_VENV:-$root/.venv}/bin/python"
    [[ -x "$python" ]] || vzero_die "no Python at '$python'; create the venv (bash scripts/setup_env.sh) or set VZERO_VENV"
  else
    python=python
  fi

  vzero_head_node
  # A port derived from the job id: two jobs sharing a node never collide.
  local port="${VZERO_RDZV_PORT:-$((20000 + SLURM_JOB_ID % 10000))}"
  # c10d rendezvous assigns node ranks itself (no --node-rank); the store lives on the head.
  local torchrun=("$python" -m torch.distributed.run
    --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node="$nproc"
    --rdzv-backend=c10d --rdzv-endpoint="$VZERO_HEAD_ADDR:$port" --rdzv-id="$SLURM_JOB_ID"
    --max-restarts=0)
  # Flags before overrides: the trainer's CLI takes its flags first, then key=value words.
  local trainer=(-m vzero_nemo.train --recipe "$recipe" "${VZERO_FLAGS[@]}" "${VZERO_ARGS[@]}")

  VZERO_MOUNT_PATHS=("$root" "$run_dir")
  [[ -n "$ckpt_dir" ]] && mkdir -p "$ckpt_dir" && VZERO_MOUNT_PATHS+=("$ckpt_dir")
  [[ -n "$data_dir" && -d "$data_dir" ]] && VZERO_MOUNT_PATHS+=("$data_dir")
  [[ -n "$hf_path" && -d "$hf_path" ]] && VZERO_MOUNT_PATHS+=("$hf_path")
  vzero_srun_prefix
  local cmd=("${VZERO_SRUN[@]}" bash "$root/slurm/node_launch.sh" "${torchrun[@]}" "${trainer[@]}")
  vzero_print_cmd "${cmd[@]}"

  local rc=0
  vzero_run_step "${cmd[@]}" || rc=$?
  vzero_log "training step exited with status $rc"
  if ((VZERO_DRY_RUN)); then
    vzero_notice "dry run finished with status $rc"
    return "$rc"
  fi
  ((rc == 0)) || vzero_die "training failed (exit $rc); not requeued. Fix the cause, then resubmit with VZERO_RUN_DIR=$run_dir to resume"
  vzero_complete_or_requeue "$state_file" "$start_iteration" "$restart"
}
