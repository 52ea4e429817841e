#!/usr/bin/env bash
# Create or reuse the project venv (.venv, Python 3.12) with the pinned CPU stack.
#
#   bash scripts/setup_env.sh          # idempotent: reinstalls only when requirements change
#
# Megatron-Bridge is installed --no-deps (see requirements/bridge.txt); the project itself is
# installed editable. A stamp file holding the hash of the requirement files makes reruns free.
# The packages are installed by uv (pinned in requirements/installer.txt, itself installed with
# the venv's pip): the same pinned versions as pip resolves, in about 20 s instead of about
# 2 minutes from a fresh clone (docs/results/speed/README.md, "Environment setup").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VZERO_VENV:-$ROOT/.venv}"

find_python() {
  for cand in "${VZERO_PYTHON:-}" python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 \
              /usr/bin/python3.12 /usr/local/bin/python3.12; do
    [[ -z "$cand" ]] && continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  echo "error: Python 3.12 not found (megatron-core >= 0.17 needs it); set VZERO_PYTHON=/path/to/python3.12" >&2
  return 1
}

STAMP_HASH="$(cat "$ROOT"/requirements/*.txt "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
STAMP="$VENV/.vzero-stamp"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_HASH" ]]; then
  exit 0
fi

PY="$(find_python)"
echo "[setup] creating/updating $VENV with $PY" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# --compile-bytecode: as pip does, so that imports read .pyc even where PYTHONDONTWRITEBYTECODE
# is set (the stack imports in ~11 s with .pyc files and ~23 s without).
UV=("$VENV/bin/uv" pip install --compile-bytecode --python "$VENV/bin/python")
# The machine-wide pip constraint caps torch for Python 3.11 wheels on disk; our pins are exact.
export PIP_CONSTRAINT=""
# The installers' own output (index notices, build warnings) goes to a log; a failure prints
# its tail.
LOG="$VENV/setup.log"
: > "$LOG"
install() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "[setup] $* failed; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}
install "${PIP[@]}" install --progress-bar off -r "$ROOT/requirements/installer.txt"
echo "[setup] installing requirements/cpu.txt (log: $LOG)" >&2
install "${UV[@]}" -r "$ROOT/requirements/cpu.txt"
install "${UV[@]}" --no-deps -r "$ROOT/requirements/bridge.txt"
install "${UV[@]}" --no-deps --no-build-isolation -e "$ROOT"
echo "$STAMP_HASH" > "$STAMP"
echo "[setup] venv ready: $VENV" >&2
