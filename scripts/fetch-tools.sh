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

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || {
  echo "fetch-tools: $keyring is missing (Debian package debian-archive-keyring)" >&2
  exit 1
}
apt="$PWD/$cache/apt-kubectl"
mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/etc/apt.conf.d" \
  "$apt/lists/partial" "$apt/archives/partial"
: >"$apt/status"
{
  for suite in bookworm trixie; do
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main"
  done
} >"$apt/etc/sources.list"
opts=(
  -o "Dir::Etc=$apt/etc"
  -o "Dir::Etc::sourcelist=$apt/etc/sources.list"
  -o "Dir::Etc::sourceparts=$apt/etc/sources.list.d"
  -o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
  -o "Dir::Etc::parts=$apt/etc/apt.conf.d"
  -o "Dir::State::lists=$apt/lists"
  -o "Dir::State::status=$apt/status"
  -o "Dir::Cache=$apt"
  -o "Dir::Cache::archives=$apt/archives"
  -o "APT::Architecture=$(dpkg --print-architecture)"
  -o "APT::Architectures::=$(dpkg --print-architecture)"
)
# As root apt fetches as the _apt user, which cannot write under a private directory: stay root.
[ "$(id -u)" -ne 0 ] || opts+=(-o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -q update

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in "${missing[@]}"; do
  read -r suite pkg bin dir <<<"$w"
  rm -rf "$work/root" "$work"/*.deb
  (cd "$work" && apt-get "${opts[@]}" -q download "$pkg/$suite")
  dpkg-deb -x "$work"/"${pkg}"_*.deb "$work/root"
  mkdir -p "$cache/$dir"
  install -m 0755 "$work/root/usr/bin/$bin" "$cache/$dir/$bin"
  echo "fetch-tools: $cache/$dir/$bin is $suite's $pkg"
done
rm -rf "$apt" # the package lists (about 40 MB); the next run fetches them again if needed
