#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's Chromium and ChromeDriver for the
# Space's browser test. Idempotent; uses sudo when not root. Skipped with ECON_EVAL_SKIP_SYSTEM=1.
set -euo pipefail
[[ "${ECON_EVAL_SKIP_SYSTEM:-0}" == 1 ]] && exit 0
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-test-system: no apt-get; install Chromium and ChromeDriver yourself (the browser test needs them)" >&2
  exit 0
fi
SUDO=""
[[ "$(id -u)" != 0 ]] && SUDO="sudo"
echo "installing Debian chromium + chromium-driver for the browser test (about a minute) ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
