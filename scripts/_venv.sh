# Sourced by scripts/serve and scripts/test: .venv holds exactly what uv.lock says (hashes checked).
# uv itself comes from PyPI into .tools/uv, pinned with hashes (scripts/uv-requirements.txt); uv's output goes to
# .venv-install.log (its tail is shown if it fails). Usage: source _venv.sh "EXTRA,EXTRA" [exact|inexact]
#   exact   (scripts/test): .venv holds the lock's packages for those extras and nothing else
#   inexact (scripts/serve): installs the runtime without removing extras a test run installed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-}"
mode="${2:-exact}"
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
uv=.tools/uv/bin/uv
if [ ! -x "$uv" ]; then
  echo "==> bootstrapping uv into .tools/uv (pinned with hashes: scripts/uv-requirements.txt)" >&2
  "${PYTHON:-python3}" -m venv .tools/uv >&2
  .tools/uv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r scripts/uv-requirements.txt >&2
fi
# --compile-bytecode: this machine's environment sets PYTHONDONTWRITEBYTECODE=1, so nothing imported is ever cached
# as bytecode and every process (each test's `booking serve`, worker, bench) compiled its imports again: about 1.6 s
# of CPU per process start. The .pyc files are written once here instead (read back even with that setting).
sync_args=(sync --locked --compile-bytecode --python "${PYTHON:-python3}")
IFS=, read -ra extra_list <<<"$extras"
for e in "${extra_list[@]}"; do [ -n "$e" ] && sync_args+=(--extra "$e"); done
[ "$mode" = inexact ] && sync_args+=(--inexact)
install_log=.venv-install.log
started=$SECONDS
if ! "$uv" "${sync_args[@]}" >"$install_log" 2>&1; then
  tail -n 40 "$install_log" >&2
  echo "==> installing from uv.lock failed (uv's whole output: $install_log)" >&2
  echo "    (a changed pyproject.toml needs a new lock: .tools/uv/bin/uv lock)" >&2
  exit 1
fi
# the project's own modules too (an editable install is not compiled by uv); a changed file is compiled again here
.venv/bin/python -m compileall -q -j 0 engine api persistence benchmarks >/dev/null 2>&1 || true
[ $((SECONDS - started)) -gt 2 ] && echo "==> installed from uv.lock in $((SECONDS - started)) s" >&2
true
