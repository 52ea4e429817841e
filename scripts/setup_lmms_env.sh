#!/usr/bin/env bash
# Create or reuse the optional lmms-eval venv (.venv-lmms) for the benchmark bridge.
#
#   bash scripts/setup_lmms_env.sh     # idempotent: reinstalls only when its requirements change
#
# Why a second venv: lmms-eval 0.7.3 pins wandb==0.25.0 and ruff>=0.16.4, which conflict with
# the project's pins (wandb 0.29.0, ruff 0.14.5). The venv adds the project venv's
# site-packages AFTER its own (a .pth file), so torch, transformers and the rest of the pinned
# stack are shared (not downloaded again) and only lmms-eval, its extra dependencies and the
# two conflicting packages live here. The project venv is never modified.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
BASE="${VZERO_VENV:-$ROOT/.venv}"
VENV="${VZERO_LMMS_VENV:-$ROOT/.venv-lmms}"
REQ="$ROOT/requirements/optional/lmms.txt"

STAMP_HASH="$(cat "$REQ" "$BASE/.vzero-stamp" | sha256sum | cut -c1-16)"
STAMP="$VENV/.vzero-lmms-stamp"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_HASH" ]]; then
  exit 0
fi
echo "[setup] creating/updating $VENV (lmms-eval over $BASE)" >&2
PY="$(sed -n 's/^executable = //p' "$(readlink -f "$BASE")/pyvenv.cfg")"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
BASE_SITE="$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$(readlink -f "$BASE_SITE")" > "$SITE/zz_vzero_base.pth"
export PIP_CONSTRAINT=""
# The project's pins (less the two lmms-eval overrides) constrain everything shared, so
# nothing of the base stack is replaced or downloaded again.
CONSTRAINTS="$VENV/constraints.txt"
grep -Ev '^(wandb|ruff)==' "$ROOT/requirements/cpu.txt" > "$CONSTRAINTS"
"$VENV/bin/python" -m pip --disable-pip-version-check install --progress-bar off \
    -r "$REQ" -c "$CONSTRAINTS" >&2
echo "$STAMP_HASH" > "$STAMP"
echo "[setup] lmms-eval venv ready: $VENV" >&2
