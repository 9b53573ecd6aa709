#!/usr/bin/env bash
# Puts two Debian builds of kubectl under node_modules/.cache, for the deploy tests
# (packages/agent/src/deploy.kubectl.test.ts, which skips, saying why, when one is absent):
#   kubectl-debian/kubectl  Debian 12's kubectl 1.20 (bookworm, package kubernetes-client)
#   kubectl-trixie/kubectl  a current kubectl (trixie, package kubectl)
# Nothing is installed and the system's apt sources are left alone: a private apt configuration
# under node_modules/.cache/apt-kubectl names both suites, `apt-get download` fetches the two
# .deb files (verified against the Debian archive keyring) and dpkg-deb extracts the binaries.
# (Installing them would clash with other packages: /usr/bin/kubectl may come from Google's.)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=node_modules/.cache
# suite package destination-directory
wanted=(
  "bookworm kubernetes-client kubectl-debian"
  "trixie kubectl kubectl-trixie"
)

missing=()
for w in "${wanted[@]}"; do
  read -r _ _ dir <<<"$w"
  if [ -x "$cache/$dir/kubectl" ]; then
    echo "fetch-kubectl: $cache/$dir/kubectl already there"
  else
    missing+=("$w")
  fi
done
((${#missing[@]})) || exit 0

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || {
  echo "fetch-kubectl: $keyring is missing (Debian package debian-archive-keyring)" >&2
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
  read -r suite pkg dir <<<"$w"
  rm -rf "$work/root" "$work"/*.deb
  (cd "$work" && apt-get "${opts[@]}" -q download "$pkg/$suite")
  dpkg-deb -x "$work"/"${pkg}"_*.deb "$work/root"
  mkdir -p "$cache/$dir"
  install -m 0755 "$work/root/usr/bin/kubectl" "$cache/$dir/kubectl"
  version=$("$cache/$dir/kubectl" version --client 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -1 || true)
  echo "fetch-kubectl: $cache/$dir/kubectl is $suite's $pkg ($version)"
done
rm -rf "$apt" # the package lists (about 40 MB); the next run fetches them again if needed
