#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment used by the conformance
# tests in tests/conformance, installs their pinned requirements, and prints the
# venv path on stdout.
#
# Env: CHORUS_VENV  venv location, relative to the repo root or absolute (default .venv)
#      CHORUS_REQUIREMENTS  the requirements file (default tests/conformance/requirements.txt)
#      PYTHON       interpreter used to create the venv (default python3)
# Needs Python >= 3.9 with the venv module (on Debian: apt-get install python3-venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="${CHORUS_VENV:-.venv}"
case "$venv" in
  /*) ;;
  *) venv="$root/$venv" ;;
esac
python="${PYTHON:-python3}"
req="${CHORUS_REQUIREMENTS:-$root/tests/conformance/requirements.txt}"
stamp="$venv/.chorus-requirements.sha256"

# A venv without a working pip (e.g. left by a failed `venv` run) is recreated.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -f "$stamp"
  if ! "$python" -m venv --clear "$venv" >&2; then
    echo "python-env.sh: '$python -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
    exit 1
  fi
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$stamp"
fi

echo "$venv"
