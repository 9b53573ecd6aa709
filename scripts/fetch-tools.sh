#!/usr/bin/env bash
# Puts tools the tests need, extracted from Debian packages, under node_modules/.cache:
#   kubectl-debian/kubectl  Debian 12's kubectl 1.20 (bookworm, package kubernetes-client)
#   kubectl-trixie/kubectl  a current kubectl (trixie, package kubectl)
#     for the deploy tests (packages/agent/src/deploy.kubectl.test.ts) and the lab's kubectl test
#   promtool-debian/promtool  Prometheus' rule checker (bookworm, package prometheus), for
#     packages/agent/src/observability.test.ts
# Nothing is installed and the system's apt sources are left alone: a private apt configuration
# under node_modules/.cache/apt-kubectl names both suites, `apt-get download` fetches the .deb
# files (verified against the Debian archive keyring) and dpkg-deb extracts the binaries.
# (Installing them would clash or start daemons: /usr/bin/kubectl may come from Google's, and the
# prometheus package starts a Prometheus server where systemd runs.)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=node_modules/.cache
# suite package binary destination-directory
wanted=(
  "bookworm kubernetes-client kubectl kubectl-debian"
  "trixie kubectl kubectl kubectl-trixie"
  "bookworm prometheus promtool promtool-debian"
)

missing=()
for w in "${wanted[@]}"; do
  read -r _ _ bin dir <<<"$w"
  if [ -x "$cache/$dir/$bin" ]; then
    echo "fetch-tools: $cache/$dir/$bin already there"
  else
    missing+=("$w")
  fi
done
((${#missing[@]})) || exit 0

. scripts/lib/private-apt.sh
apt="$PWD/$cache/apt-kubectl"
private_apt "$apt" \
  "deb [signed-by=$private_apt_keyring] http://deb.debian.org/debian bookworm main" \
  "deb [signed-by=$private_apt_keyring] http://deb.debian.org/debian trixie main" || {
  echo "fetch-tools: cannot make the private apt configuration" >&2
  exit 1
}
apt-get "${apt_opts[@]}" -q update

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in "${missing[@]}"; do
  read -r suite pkg bin dir <<<"$w"
  rm -rf "$work/root" "$work"/*.deb
  (cd "$work" && apt-get "${apt_opts[@]}" -q download "$pkg/$suite")
  dpkg-deb -x "$work"/"${pkg}"_*.deb "$work/root"
  mkdir -p "$cache/$dir"
  install -m 0755 "$work/root/usr/bin/$bin" "$cache/$dir/$bin"
  echo "fetch-tools: $cache/$dir/$bin is $suite's $pkg"
done
rm -rf "$apt" # the package lists (about 40 MB); the next run fetches them again if needed
