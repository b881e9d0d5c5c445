# Shared helpers for scripts/dev and scripts/test. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"

say() { printf '==> %s\n' "$*"; }
die() { printf '%s\n' "$*" >&2; exit 1; }

# Create .venv and install the project with its dev extras whenever pyproject.toml changes.
ensure_venv() {
  command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON_BIN" -m venv "$VENV" 2>/dev/null || {
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON_BIN" -m venv "$VENV"
    } || die "scripts: cannot create a virtualenv with $PYTHON_BIN (need Python 3.11)"
  fi
  local stamp="$VENV/.installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies into .venv"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "${ROOT}[dev]" || die "scripts: pip install failed (see above)"
    echo "$want" >"$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# Debian's Chromium for the browser tests (Playwright drives it; it cannot download one).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  say "installing Debian's chromium for the browser tests"
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } ||
    die "scripts: cannot install chromium with apt-get (needed by tests/frontend)"
}
