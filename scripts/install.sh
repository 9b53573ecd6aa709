#!/usr/bin/env bash
# Installs everything podnet needs on a fresh Debian 12 machine: the Debian packages listed in
# scripts/debian-packages.txt, then the npm workspace (which builds the native addon and brings
# its own Node 24 into node_modules/.bin, so npm scripts never run on the system Node 20).
set -euo pipefail
cd "$(dirname "$0")/.."
# --tests: also what only the tests need (the real-cluster tier's budgeted Kubernetes build).
for_tests=0
case "${1:-}" in
  --tests) for_tests=1 ;;
  "") ;;
  *) echo "install: unknown option '$1' (only --tests)" >&2; exit 2 ;;
esac

mapfile -t pkgs < <(grep -vE '^\s*(#|$)' scripts/debian-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install: Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  # policy-rc.d keeps the routing daemons (bird, frr, gobgpd) from starting as system services:
  # tests and the lab start their own instances inside network namespaces.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install: Debian packages already present"
fi

echo "install: npm workspace"
# `npm ci`: installs exactly the committed lock and fails when package.json and package-lock.json
# disagree, so CI (which runs this script) catches a lock that the Dockerfiles' `npm ci` would refuse.
npm ci --no-fund --no-audit

echo "install: kubectl and promtool builds for the tests (scripts/fetch-tools.sh)"
scripts/fetch-tools.sh

# The real-cluster tier's Kubernetes binaries (docs/real-cluster.md), for the tests only (`--tests`;
# the lab does not need them). A cold build takes 60 to 80 minutes on 2 cores, more than one CI run
# can spare: each run builds for at most PODNET_KUBE_BUILD_BUDGET seconds (default 600; 0 skips),
# resuming where the last one stopped
# (source tree, Go cache and finished binaries are kept under /var/cache/podnet), and
# test/src/cluster-real.test.ts runs once the cache is complete (until then it is skipped and
# prints how far the build is). Cached, this returns at once.
budget=${PODNET_KUBE_BUILD_BUDGET:-600}
if [ "$for_tests" = 1 ] && [ "$budget" != 0 ]; then
  echo "install: Kubernetes 1.20.2 for the real-cluster tier (scripts/kube-build.sh --budget $budget)"
  rc=0
  scripts/kube-build.sh --budget "$budget" >&2 || rc=$?
  case $rc in
    0) ;;
    3) echo "install: the Kubernetes build goes on in the next run: $(scripts/kube-build.sh --status || true)" ;;
    *) echo "install: scripts/kube-build.sh failed (exit $rc); the real-cluster scenario is skipped until it succeeds" >&2 ;;
  esac
fi
