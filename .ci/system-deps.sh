#!/usr/bin/env bash
# What the system suite needs on a fresh Debian machine, as root: Debian's Chromium (no browser
# download: Playwright drives /usr/bin/chromium), the Playwright Python package in .venv, and
# stress-ng (CI's loaded run). Idempotent and quick when everything is already there.
# Never fails the build: when the browser cannot be installed, the UI test skips with a LOUD reason
# (tests/system/test_ui.py says which part is missing).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

# Debian packages: chromium (the UI test's browser) and stress-ng (CI keeps the other core busy
# while the system suite runs, to prove it does not depend on a quiet machine).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "system-deps: installing Debian's ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || echo "system-deps: WARNING apt-get update failed"
        for pkg in "${missing[@]}"; do
            apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
                || echo "system-deps: WARNING could not install $pkg (chromium: the UI test will be SKIPPED)"
        done
    else
        echo "system-deps: WARNING ${missing[*]} missing and not root/apt: the UI test may be SKIPPED"
    fi
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    echo "system-deps: installing playwright (Python) into .venv"
    if [ -x .venv/bin/uv ]; then
        .venv/bin/uv pip install -q --python "$PY" "playwright>=1.45" \
            || echo "system-deps: WARNING could not install playwright; the UI test will be SKIPPED"
    else
        "$PY" -m pip install -q "playwright>=1.45" \
            || echo "system-deps: WARNING could not install playwright; the UI test will be SKIPPED"
    fi
fi
# Never `playwright install`: it downloads a browser build, which this network refuses.
/usr/bin/chromium --version 2>/dev/null || true
"$PY" -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))" 2>/dev/null || true
exit 0
