#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs the
# whole suite: formatting, lints, unit and end-to-end tests (real SIPp
# against the real binary on loopback), and a bounded fuzz run.
#
#   scripts/test.sh              everything
#   FUZZ_SECONDS=0 scripts/test.sh   skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
APT_PACKAGES=(sip-tester baresip-core pkg-config libopus-dev libbcg729-dev)

need_install=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need_install+=("$p")
done
if [ ${#need_install[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "== installing ${need_install[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_install[@]}"
    else
        echo "missing packages: ${need_install[*]} (run as root or: sudo apt-get install ${need_install[*]})" >&2
        exit 1
    fi
fi

# The store tests run against real PostgreSQL on 127.0.0.1:5432 (trust auth);
# start the local cluster if it is installed but down.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [ "$(id -u)" -eq 0 ]; then
        echo "== starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
# G.729 links the GPL-3 bcg729, so it is an off-by-default feature: test it
# on its own (the test binary is not distributed).
echo "== cargo test -p media --features g729"
cargo test -p media --features g729

if [ "$FUZZ_SECONDS" -gt 0 ] && [ -x fuzz/run.sh ]; then
    echo "== fuzzing ${FUZZ_SECONDS}s per target"
    fuzz/run.sh "$FUZZ_SECONDS"
fi
echo "== all tests passed"
