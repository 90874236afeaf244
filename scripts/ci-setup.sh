#!/usr/bin/env bash
# The job's Python environment: a virtualenv with requirements.lock's packages, its bin/ on
# PATH for every later step of the job (the commands dvc.yaml runs included), this
# checkout's code first on PYTHONPATH.
#   scripts/ci-setup.sh          everything (training, evaluation): make setup
#   scripts/ci-setup.sh --slim   what ci, report and release commands need: make setup-slim
# A runner image may ship a prebuilt venv and name it in FLYWHEEL_VENV; it is used when it
# was built from this checkout's requirements.lock and pyproject.toml (its .installed stamp),
# and never written to. Otherwise the job builds its own in the workspace.
set -euo pipefail
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -n "${FLYWHEEL_VENV:-}" ] && [ "$(cat "$FLYWHEEL_VENV/.installed" 2>/dev/null)" = "$want" ]; then
  venv=$FLYWHEEL_VENV
elif [ "${1:-}" = --slim ]; then
  make setup-slim >&2
  venv=$PWD/.venv
else
  make setup >&2
  venv=$PWD/.venv
fi
echo "$venv/bin" >> "$GITHUB_PATH"
echo "PYTHONPATH=$PWD" >> "$GITHUB_ENV"
echo "ci-setup: $venv"
