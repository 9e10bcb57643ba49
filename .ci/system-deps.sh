#!/usr/bin/env bash
# What the test suites need on a fresh Debian machine, as root: Debian's Chromium (no browser
# download: Playwright drives /usr/bin/chromium), the Playwright Python package in .venv, stress-ng
# (CI's loaded run), PostgreSQL (tests/pg_server.py starts a server of its own from its programs) and
# Redis (the distributed suite's Celery broker: tests/distributed/redis_server.py starts its own
# redis-server on a free loopback port, without persistence; no system Redis is started or used).
# Idempotent and quick when everything is already there.
# Never fails the build: when the browser cannot be installed, the UI test skips with a LOUD reason
# (tests/system/test_ui.py says which part is missing); without PostgreSQL the tests that need a
# server skip with a LOUD reason too (or fail, with VAPI_REQUIRE_POSTGRES=1); without redis-server the
# distributed suite does the same (fails with VAPI_REQUIRE_DISTRIBUTED=1).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

# Debian packages: chromium (the UI test's browser), stress-ng (CI keeps the other core busy
# while the system suite runs, to prove it does not depend on a quiet machine) and postgresql (only
# its programs, /usr/lib/postgresql/<version>/bin: the tests run initdb and the server themselves).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng)
have_initdb() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have_initdb || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "system-deps: installing Debian's ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || echo "system-deps: WARNING apt-get update failed"
        # No system cluster (the tests make their own): nothing listens on 5432, nothing to fail in
        # postinst (pg_createcluster stops on a missing locale). Only read when the package installs.
        if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.d/vapi-tests.conf ]; then
            mkdir -p /etc/postgresql-common/createcluster.d
            echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/vapi-tests.conf
        fi
        # Debian's redis-server starts a system Redis on 6379 when installed, unless policy-rc.d
        # forbids it (Docker-like images ship one that does). The suite starts its own: forbid it
        # for this install alone when nothing already does.
        added_policy=""
        if [[ " ${missing[*]} " == *" redis-server "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\n# system-deps.sh: no service starts while it installs packages\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d && added_policy=1
            trap '[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        for pkg in "${missing[@]}"; do
            apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
                || echo "system-deps: WARNING could not install $pkg (chromium: the UI test will be SKIPPED; redis-server: the distributed suite)"
        done
        [ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d && added_policy=""
        if [[ " ${missing[*]} " == *" redis-server "* ]] && ! command -v redis-server >/dev/null 2>&1; then
            echo "system-deps: WARNING no redis-server: the distributed suite will be SKIPPED (or fail in CI)"
        fi
        # A postinst that failed can still leave the programs, which is all the tests use.
        if [[ " ${missing[*]} " == *" postgresql "* ]] && ! have_initdb; then
            echo "system-deps: WARNING no initdb under /usr/lib/postgresql/*/bin: the PostgreSQL tests will be SKIPPED"
        fi
    else
        echo "system-deps: WARNING ${missing[*]} missing and not root/apt: the UI test or the PostgreSQL tests may be SKIPPED"
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
for initdb in /usr/lib/postgresql/*/bin/initdb; do [ -x "$initdb" ] && "$initdb" --version; done 2>/dev/null || true
redis-server --version 2>/dev/null || true
"$PY" -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))" 2>/dev/null || true
exit 0
