#!/usr/bin/env bash
# A real, private Slurm cluster on this machine: 2 nodes (n1, n2) with 8 fake GPUs each.
#
#   export VZERO_SLURM_DIR=/tmp/vzero-slurm     # all config, state, logs, sockets live here
#   bash scripts/local_slurm.sh up              # install (apt) if missing, start, wait until idle
#   export SLURM_CONF=$VZERO_SLURM_DIR/etc/slurm.conf
#   sbatch slurm/vzero_tiny_cpu.sh ...
#   bash scripts/local_slurm.sh wait 12 13      # block until jobs end; exit 0 only if all COMPLETED
#   bash scripts/local_slurm.sh status
#   bash scripts/local_slurm.sh down            # cancel jobs, stop the daemons it started
#
# Debian's slurmctld/slurmd/munge (22.05) run as root without systemd. Both nodes are slurmd
# processes on this machine (MULTIPLE_SLURMD: `slurmd -N n1`), NodeAddr=127.0.0.1 with one
# port each; everything listens on loopback. munged runs as user munge on a private socket.
# Fake GPUs are gres files that link to /dev/null, so GPU scripts' headers are schedulable.
# `down` signals only the PIDs recorded in this directory's pidfiles, never processes by name.
#
# Environment: VZERO_SLURM_DIR (default ${TMPDIR:-/tmp}/vzero-slurm), VZERO_SLURM_PORT
# (slurmctld port, default 16817; nodes use the next two), VZERO_SLURM_TIMEOUT_S (bounded
# waits, default 60). Exit status 3: Slurm is missing and apt-get could not install it.
set -euo pipefail

DIR="${VZERO_SLURM_DIR:-${TMPDIR:-/tmp}/vzero-slurm}"
CTLD_PORT="${VZERO_SLURM_PORT:-16817}"
TIMEOUT_S="${VZERO_SLURM_TIMEOUT_S:-60}"
NODES=(n1 n2)
GPUS_PER_NODE=8
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket.2"
export SLURM_CONF="$CONF"

die() {
  echo "local_slurm: error: $*" >&2
  exit 1
}
log() { echo "local_slurm: $*" >&2; }

# Poll `$@` once a second until it succeeds; fail after TIMEOUT_S with `what` in the message.
wait_for() {
  local what="$1"
  shift
  local deadline=$((SECONDS + TIMEOUT_S))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT_S}s waiting for $what (logs: $DIR/log)"
    sleep 1
  done
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Exit status 3 (and only then) means "Slurm is missing and apt-get could not install it".
install_failed() {
  echo "local_slurm: cannot install slurm: $*" >&2
  exit 3
}

install_if_missing() {
  local missing=0 tool
  for tool in slurmctld slurmd munged sbatch srun scontrol; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  command -v apt-get >/dev/null 2>&1 || install_failed "slurm is not installed and apt-get is unavailable"
  log "installing slurmctld slurmd slurm-client munge with apt-get"
  timeout 120 apt-get update -qq || install_failed "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null || install_failed "apt-get install failed"
}

write_config() {
  local host
  host="$(hostname -s)"
  mkdir -p "$DIR"/{etc,state,log,run,dev}
  local gres_lines="" node_lines="" i node port
  for i in "${!NODES[@]}"; do
    node="${NODES[$i]}"
    port=$((CTLD_PORT + 1 + i))
    for g in $(seq 0 $((GPUS_PER_NODE - 1))); do
      ln -sfn /dev/null "$DIR/dev/$node-gpu$g"
    done
    node_lines+="NodeName=$node NodeAddr=127.0.0.1 Port=$port CPUs=2 RealMemory=2000 "
    node_lines+="Gres=gpu:$GPUS_PER_NODE State=UNKNOWN"$'\n'
    gres_lines+="NodeName=$node Name=gpu File=$DIR/dev/$node-gpu[0-$((GPUS_PER_NODE - 1))]"$'\n'
  done
  # Why each non-default line is here:
  #   SlurmctldHost must equal `hostname -s`, else slurmctld refuses to start as controller.
  #   proctrack/pgid + task/none: no cgroups or systemd needed.
  #   kill_invalid_depend: a job whose dependency can never be met is cancelled, not left
  #     pending forever.
  #   cred_expire=5: a requeued job waits cred_expire+1 s before it may start (default 120).
  #   FirstJobId from the port: clusters on different ports number their jobs differently,
  #     so their jobs' rendezvous ports (derived from job ids by the launcher) differ.
  #   Short scheduler/kill intervals keep the test tier fast.
  cat >"$CONF" <<EOF
ClusterName=vzero
FirstJobId=$(((CTLD_PORT % 1000) * 10 + 1))
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=5
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.daemon.pid
SlurmdPidFile=$DIR/run/slurmd-%n.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
DependencyParameters=kill_invalid_depend
SlurmdParameters=config_overrides
GresTypes=gpu
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
MinJobAge=900
KillWait=5
Waittime=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
SlurmctldDebug=info
SlurmdDebug=info
$node_lines
PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP
EOF
  printf '%s' "$gres_lines" >"$DIR/etc/gres.conf"
}

start_munge() {
  pid_alive "$DIR/run/munged.pid" && return 0
  mkdir -p "$DIR/munge"
  [[ -f "$DIR/munge/munge.key" ]] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$DIR/munge"
  chmod 0700 "$DIR/munge"
  chmod 0400 "$DIR/munge/munge.key"
  chmod a+x "$DIR"
  runuser -u munge -- test -r "$DIR/munge/munge.key" ||
    die "user munge cannot reach $DIR/munge: every parent directory of VZERO_SLURM_DIR must be world-traversable (e.g. a directory under /tmp)"
  # munged refuses to run as root; --force accepts the world-writable /tmp above our dir.
  runuser -u munge -- munged --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
  wait_for "munged pidfile" test -s "$DIR/munge/munged.pid"
  cp "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
  wait_for "munge credentials" bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

# Start one daemon in the foreground under our control; its PID goes to our pidfile.
start_daemon() {
  local name="$1"
  shift
  pid_alive "$DIR/run/$name.pid" && return 0
  nohup "$@" >>"$DIR/log/$name.stdout" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pid"
}

nodes_idle() {
  local states
  states="$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u)"
  [[ "$(grep -c ' idle$' <<<"$states")" -eq "${#NODES[@]}" ]]
}

cmd_up() {
  if pid_alive "$DIR/run/slurmctld.pid"; then
    log "already up in $DIR"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  install_if_missing
  write_config
  start_munge
  start_daemon slurmctld slurmctld -D -f "$CONF"
  wait_for "slurmctld to answer" bash -c "scontrol ping | grep -q UP"
  local node
  for node in "${NODES[@]}"; do
    start_daemon "slurmd-$node" slurmd -D -N "$node" -f "$CONF"
  done
  wait_for "nodes ${NODES[*]} to be idle" nodes_idle
  log "up: export SLURM_CONF=$CONF"
  echo "export SLURM_CONF=$CONF"
}

# SIGTERM the PIDs recorded in these pidfiles, wait for all (bounded), SIGKILL what remains.
stop_pidfiles() {
  local pidfile pids=()
  for pidfile in "$@"; do
    pid_alive "$pidfile" && pids+=("$(cat "$pidfile")")
  done
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 15)) pid alive
    while :; do
      alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      ((${#alive[@]} && SECONDS < deadline)) || break
      sleep 0.2
    done
    if ((${#alive[@]})); then
      log "pids ${alive[*]} ignored SIGTERM for 15s; sending SIGKILL"
      kill -KILL "${alive[@]}" 2>/dev/null || true
    fi
  fi
  rm -f "$@"
}

# Job steps run in slurmstepd processes that outlive slurmd; each holds a socket in the spool.
steps_running() {
  local sock
  for sock in "$DIR"/state/slurmd-*/*_[0-9]*.[0-9]*; do
    [[ -S "$sock" ]] && return 0
  done
  return 1
}

cmd_down() {
  [[ -d "$DIR" ]] || { log "nothing to stop in $DIR"; return 0; }
  if pid_alive "$DIR/run/slurmctld.pid"; then
    local jobs
    jobs="$(squeue -h -o %i 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086  # job ids are plain integers from squeue
      scancel $jobs 2>/dev/null || true
      local deadline=$((SECONDS + TIMEOUT_S))
      while [[ -n "$(squeue -h -o %i 2>/dev/null)" ]] && ((SECONDS < deadline)); do sleep 1; done
    fi
    local deadline=$((SECONDS + TIMEOUT_S))
    while steps_running && ((SECONDS < deadline)); do sleep 1; done
    steps_running && log "warning: job step sockets remain in $DIR/state (slurmstepd still running?)"
  fi
  local node slurmds=()
  for node in "${NODES[@]}"; do slurmds+=("$DIR/run/slurmd-$node.pid"); done
  stop_pidfiles "${slurmds[@]}"
  stop_pidfiles "$DIR/run/slurmctld.pid"
  stop_pidfiles "$DIR/run/munged.pid"
  log "down (state and logs kept in $DIR)"
}

cmd_status() {
  local name
  for name in munged slurmctld "${NODES[@]/#/slurmd-}"; do
    if pid_alive "$DIR/run/$name.pid"; then
      echo "$name: running (pid $(cat "$DIR/run/$name.pid"))"
    else
      echo "$name: stopped"
    fi
  done
  if pid_alive "$DIR/run/slurmctld.pid"; then sinfo -N -o '%N %t %G'; fi
}

job_field() { grep -o "\b$2=[^ ]*" <<<"$1" | head -n1 | cut -d= -f2-; }

# Wait (bounded by VZERO_SLURM_TIMEOUT_S, or VZERO_SLURM_WAIT_S) until every job is in a final
# state; print `JOBID STATE REASON EXIT_CODE RESTARTS`; exit 0 only if all COMPLETED. Needed
# because `sbatch --wait` exits 0 for a job cancelled by a failed dependency.
cmd_wait() {
  (($# > 0)) || die "wait needs job ids"
  local deadline=$((SECONDS + ${VZERO_SLURM_WAIT_S:-$TIMEOUT_S})) ok=0 id line state
  for id in "$@"; do
    [[ "$id" =~ ^[0-9]+$ ]] || die "job id '$id' is not a number"
    while :; do
      line="$(scontrol -o show job "$id" 2>/dev/null)" || die "job $id is unknown to slurmctld"
      state="$(job_field "$line" JobState)"
      case "$state" in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) break ;;
      esac
      ((SECONDS < deadline)) || die "timed out waiting for job $id (state $state)"
      sleep 1
    done
    echo "$id $state $(job_field "$line" Reason) $(job_field "$line" ExitCode) $(job_field "$line" Restarts)"
    [[ "$state" == COMPLETED ]] || ok=1
  done
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  wait)
    shift
    cmd_wait "$@"
    ;;
  *) die "usage: $0 up|down|status|wait JOBID..." ;;
esac
