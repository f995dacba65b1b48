#!/usr/bin/env bash
# Create bench/.venv with datamake (a normal install from this repository, not an
# editable one: an editable install adds an import hook that costs ~10 ms per start)
# and the Python tools that the benchmark compares it with.
# GNU make and ninja come from the system (apt-get install make ninja-build).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-python3}"
venv="$here/.venv"

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || exit 1
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -U pip wheel setuptools || true

# Reinstall datamake every time so that the benchmark measures the repository's code.
"${pip[@]}" install --force-reinstall --no-deps "$repo" || { echo "setup.sh: datamake failed to install" >&2; exit 1; }
"${pip[@]}" install "$repo" || exit 1
# Which datamake was installed: run.py reports it beside the results.
rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$repo" status --porcelain -- . ':!bench' 2>/dev/null)" ]; then
    rev="$rev + uncommitted changes"
fi
echo "$rev, installed $(date -u '+%Y-%m-%d %H:%M UTC')" > "$venv/datamake-source.txt"

# Each comparison tool on its own: one that fails to install is reported and skipped.
while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    "${pip[@]}" install "$pkg" || echo "setup.sh: WARNING: $pkg failed to install; run.py will skip it" >&2
done < "$here/requirements.txt"

for t in make ninja; do
    command -v "$t" >/dev/null || echo "setup.sh: WARNING: $t is not on PATH; run.py will skip it" >&2
done
# Byte-compile everything now, so that the first timed run does not pay for it.
env -u PYTHONDONTWRITEBYTECODE "$venv/bin/python" -m compileall -q "$venv/lib" >/dev/null 2>&1 || true
"$venv/bin/python" -m pip list 2>/dev/null | grep -i -E '^(datamake|doit|snakemake|kedro|kedro-datasets) '
