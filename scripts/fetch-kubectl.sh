#!/usr/bin/env bash
# Puts Debian 12's kubectl (package kubernetes-client, 1.20) at node_modules/.cache/kubectl-debian/kubectl
# without installing the package: on machines whose /usr/bin/kubectl comes from another package
# (e.g. Google's `kubectl`), installing kubernetes-client would clash with it. The deploy tests
# (packages/agent/src/deploy.kubectl.test.ts) apply deploy/ with this kubectl and with the one on
# PATH; each is skipped, saying why, when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=node_modules/.cache/kubectl-debian
if [ -x "$dest/kubectl" ]; then
  echo "fetch-kubectl: $dest/kubectl already there ($("$dest/kubectl" version --client --short 2>/dev/null || true))"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download runs as the _apt user where it can
(cd "$work" && apt-get download -q kubernetes-client)
dpkg-deb -x "$work"/kubernetes-client_*.deb "$work/root"
mkdir -p "$dest"
install -m 0755 "$work/root/usr/bin/kubectl" "$dest/kubectl"
echo "fetch-kubectl: $dest/kubectl ($("$dest/kubectl" version --client --short 2>/dev/null || true))"
