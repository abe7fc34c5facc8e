# Sourced by scripts/serve and scripts/test: a virtualenv in .venv with the project installed.
# It prints short progress lines only; pip's own output goes to .venv/install.log (its tail is shown if it fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv" >&2
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  install_log=.venv/install.log
  echo "==> installing the project${extras:+ with [$extras]} (a minute or two; pip's output: $install_log)" >&2
  started=$SECONDS
  if ! {
    .venv/bin/python -m pip install --progress-bar off --upgrade pip &&
      .venv/bin/python -m pip install --progress-bar off -e ".${extras:+[$extras]}"
  } >"$install_log" 2>&1; then
    tail -n 40 "$install_log" >&2
    echo "==> installing the project failed (the whole of pip's output: $install_log)" >&2
    exit 1
  fi
  echo "==> installed in $((SECONDS - started)) s" >&2
  touch "$stamp"
fi
