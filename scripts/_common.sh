# Shared by scripts/test, scripts/demo, scripts/bench, scripts/chaos and scripts/screenshot
# (sourced, not run). Callers set NAME (for messages) before sourcing.

# True when the arguments ask for help (-h or --help before any "--"). The scripts answer it at
# once, before creating or updating a virtual environment.
wants_help() {
  local arg
  for arg in "$@"; do
    case $arg in
      -h | --help) return 0 ;;
      --) return 1 ;;
    esac
  done
  return 1
}

# Print an interpreter for the standard-library-only command-line modules (bench/cli.py,
# simulator/cli.py): any python3 will do.
help_python() {
  command -v python3 2>/dev/null || find_python
}

# Print the newest usable Python: 3.14 (>= 3.14.2) or 3.13, from PATH or pyenv.
find_python() {
  local candidate
  for candidate in python3.14 python3.13; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
      if [ "$candidate" = python3.14 ] && ! "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 14, 2))'; then
        continue
      fi
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.14*/bin/python3.14 "$(pyenv root)"/versions/3.13*/bin/python3.13; do
      [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
  fi
  echo "$NAME: Python 3.13 or 3.14 is needed" >&2
  return 1
}

# Install mosquitto with apt-get when it is missing (the tests, demo and scenarios start their
# own brokers; the package's system broker is switched off).
ensure_mosquitto() {
  if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then return 0; fi
  echo "$NAME: installing mosquitto" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mosquitto >/dev/null
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
}

# Install Debian's Chromium with apt-get when it is missing (the browser test and scripts/screenshot
# drive it; Playwright's own browser downloads are not used).
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then return 0; fi
  echo "$NAME: installing chromium" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

# Create (or re-create, when the Python version changed) the virtual environment $1 with $2.
ensure_venv() {
  local venv=$1 python=$2 version
  version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  if [ ! -x "$venv/bin/python" ] || [ "$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" != "$version" ]; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
}

# .venv with the test requirements (installed again only when requirements_test.txt changes).
ensure_test_venv() {
  ensure_venv .venv "$(find_python)"
  local stamp=.venv/.requirements.sha want
  want=$(sha256sum requirements_test.txt | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements_test.txt
    echo "$want" > "$stamp"
  fi
}
