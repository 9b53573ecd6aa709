#!/usr/bin/env bash
# Builds the Kubernetes server binaries the real-cluster lab runs (docs/real-cluster.md) from
# Debian 12's `kubernetes` source package (1.20.2) with Debian's Go, and caches them by version:
#
#   $PODNET_KUBE_CACHE/kube-<version>-<key>/bin/{kube-apiserver,kube-controller-manager,
#                                              kube-scheduler,kubelet,kube-proxy}
#
# <key> hashes what goes into the build besides the source: the Go and reflect2 package versions
# and the RECIPE below. A run that finds the directory prints its path and exits at once.
#
# The one change to the source: the vendored github.com/modern-go/reflect2 v1.0.1 is replaced by
# Debian's golang-github-modern-go-reflect2-dev (1.0.2). v1.0.1 reads Go runtime internals that
# changed in Go 1.18; binaries built with Go >= 1.18 and v1.0.1 crash (fault in mapiterinit) as
# soon as json-iterator walks a map, i.e. on the API server's first custom resource.
#
# The machine's apt sources are left alone: the deb-src line lives in a private apt
# configuration under the cache directory. The Go build runs under `nice -n 19` (the machine is
# shared); PODNET_KUBE_BUILD_JOBS sets `go build -p` (default 2).
#
# Resumable: the source tree, the build's Go cache (GOCACHE: the 1.20 Makefile keeps it in the
# tree, _output/local/go/cache) and each finished binary stay under $PODNET_KUBE_CACHE/build-…
# until all five are built, so an interrupted run loses at most the packages being compiled.
#
# Usage: scripts/kube-build.sh [--budget SECONDS]
#          --budget: stop after about SECONDS (the running `make` is ended, what it compiled stays in
#          the Go cache) and exit 3 when not finished; the next run goes on from there. CI runs it
#          from scripts/install.sh so each run advances a cold build (docs/real-cluster.md).
#        scripts/kube-build.sh --print-dir   print the cache's bin directory if complete (exit 0),
#                                            else exit 1; builds nothing
#        scripts/kube-build.sh --status      one line: complete, or how far the build is (exit 0
#                                            when complete, else 1); builds nothing
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/private-apt.sh"

cache_root=${PODNET_KUBE_CACHE:-/var/cache/podnet}
version=1.20.2
source_pkg="kubernetes/bookworm"
targets=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy)
RECIPE="reflect2-from-debian;version-file;targets=${targets[*]}"
# Build order: what a cluster needs first (kube-proxy last). Not part of the key.
order=(cmd/kube-apiserver cmd/kubelet cmd/kube-scheduler cmd/kube-controller-manager cmd/kube-proxy)
jobs=${PODNET_KUBE_BUILD_JOBS:-2}

budget=""
mode=build
while [ $# -gt 0 ]; do
  case "$1" in
    --print-dir) mode=print-dir ;;
    --status) mode=status ;;
    --budget)
      budget=${2:-}
      [[ "$budget" =~ ^[0-9]+$ ]] || {
        echo "kube-build: --budget wants a number of seconds, got '${2:-}'" >&2
        exit 2
      }
      shift
      ;;
    *)
      echo "usage: $0 [--budget SECONDS] | --print-dir | --status" >&2
      exit 2
      ;;
  esac
  shift
done
started=$(date +%s)
deadline=$((budget ? started + budget : 0))
over_budget() { [ -n "$budget" ] && [ "$(date +%s)" -ge "$deadline" ]; }

log() { printf '%s kube-build: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() {
  log "error: $*" >&2
  exit 1
}

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
go_ver=$(pkgver golang-go)
reflect2_ver=$(pkgver golang-github-modern-go-reflect2-dev)
key=$(printf '%s\n' "$RECIPE" "golang-go=$go_ver" "reflect2=$reflect2_ver" | sha256sum | cut -c1-12)
dir="$cache_root/kube-$version-$key"

complete() {
  [ -f "$dir/.complete" ] || return 1
  for t in "${targets[@]}"; do [ -x "$dir/bin/${t#cmd/}" ] || return 1; done
}

work="$cache_root/build-$version-$key"
if [ "$mode" = print-dir ]; then
  complete && echo "$dir/bin" && exit 0
  exit 1
fi
if [ "$mode" = status ]; then
  if complete; then
    echo "complete: $dir/bin"
    exit 0
  fi
  if [ -f "$work/progress" ]; then cat "$work/progress"; else echo "not started ($dir missing)"; fi
  exit 1
fi

if complete; then
  log "cached: $dir/bin"
  echo "$dir/bin"
  exit 0
fi

[ -n "$go_ver" ] || die "Debian package golang-go is not installed (scripts/debian-packages.txt)"
[ -n "$reflect2_ver" ] || die "Debian package golang-github-modern-go-reflect2-dev is not installed"
reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2_src/reflect2.go" ] || die "$reflect2_src/reflect2.go is missing"
command -v dpkg-source >/dev/null || die "dpkg-source is missing (Debian package dpkg-dev)"
command -v rsync >/dev/null || die "rsync is missing (Debian package rsync; the Kubernetes Makefile uses it)"

mkdir -p "$cache_root"
exec 9>"$cache_root/kube-build.lock"
if ! flock -n 9 && [ -n "$budget" ]; then
  log "another build holds $cache_root/kube-build.lock; not waiting (--budget)"
  exit 3
elif ! flock -n 9; then
  log "another build holds $cache_root/kube-build.lock; waiting"
  flock 9
  if complete; then
    log "cached: $dir/bin"
    echo "$dir/bin"
    exit 0
  fi
fi

start=$started
src="$work/src"
mkdir -p "$work"
runs=$(($(cat "$work/runs" 2>/dev/null || echo 0) + 1))
echo "$runs" >"$work/runs"
spent_before=$(cat "$work/seconds" 2>/dev/null || echo 0)
# How far the build is, one line (--status; the real-cluster scenario's skip message prints it).
progress() {
  local built=() n total=0 name
  for t in "${order[@]}"; do
    name=${t#cmd/}
    [ -f "$work/.built-$name" ] && built+=("$name")
  done
  for f in "$work"/build-*.log; do
    [ -f "$f" ] || continue
    n=$(grep -cE '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.~-]+)*$' "$f" || true)
    total=$((total + n))
  done
  local spent=$((spent_before + $(date +%s) - started))
  echo "$spent" >"$work/seconds"
  printf 'incomplete: %d/%d binaries built (%s); %s; %d Go packages compiled so far; %d s over %d runs; build dir %s\n' \
    "${#built[@]}" "${#order[@]}" "${built[*]:-none}" "$1" "$total" "$spent" "$runs" "$work" >"$work/progress"
}
# With --budget: records how far the build is and exits 3 when the time is up.
budget_check() {
  if over_budget; then
    progress "$1"
    log "budget of ${budget}s spent: $(cat "$work/progress")"
    exit 3
  fi
}
progress "fetching the source"

# 1. The source package, through a private apt configuration that names bookworm's deb-src.
if [ ! -f "$src/.unpacked" ]; then
  log "fetching the Debian source package $source_pkg"
  apt="$work/apt"
  rm -rf "$src" "$apt"
  mkdir -p "$work/dl"
  private_apt "$apt" "deb-src [signed-by=$private_apt_keyring] http://deb.debian.org/debian bookworm main" ||
    die "cannot make the private apt configuration"
  apt-get "${apt_opts[@]}" -q update
  (cd "$work/dl" && apt-get "${apt_opts[@]}" -q source --download-only "$source_pkg")
  dsc=$(ls "$work/dl"/kubernetes_*.dsc)
  log "unpacking $(basename "$dsc")"
  dpkg-source --no-check -x "$dsc" "$src" >/dev/null
  rm -rf "$apt" "$work/dl"
  touch "$src/.unpacked"
fi

budget_check "source fetched"

# 2. reflect2 v1.0.1 -> Debian's 1.0.2 (see the header), in vendor/ and in the module lists that
# `go build -mod=vendor` checks against each other.
if [ ! -f "$src/.patched" ]; then
  log "replacing vendored github.com/modern-go/reflect2 with Debian's $reflect2_ver"
  v="$src/vendor/github.com/modern-go/reflect2"
  [ -d "$v" ] || die "$v is missing: not the source tree this script knows"
  rm -rf "$v"
  mkdir -p "$v"
  # Only the package's own files (Debian's tree may hold test data dirs; vendor/ keeps no tests).
  find "$reflect2_src" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name 'LICENSE' \) \
    ! -name '*_test.go' -exec cp {} "$v/" \;
  # The 1.20 Makefile builds in GOPATH mode (hack/lib/init.sh: GO111MODULE=off), where vendor/ is
  # all that counts. go.mod's replace directive (=> ... v1.0.1) and vendor/modules.txt are updated
  # too, so a module-mode build (`-mod=vendor`, which requires the two to agree) sees 1.0.2 as well.
  sed -i 's#^\(\s*github.com/modern-go/reflect2 => github.com/modern-go/reflect2\) v1\.0\.1$#\1 v1.0.2#' \
    "$src/go.mod"
  sed -i 's#^\(\# github.com/modern-go/reflect2 .*=> github.com/modern-go/reflect2\) v1\.0\.1$#\1 v1.0.2#' \
    "$src/vendor/modules.txt"
  grep -q 'github.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.2' "$src/go.mod" ||
    die "go.mod: the reflect2 replacement is not v1.0.2"
  ! grep -q 'modern-go/reflect2.*v1\.0\.1$' "$src/vendor/modules.txt" ||
    die "vendor/modules.txt: a reflect2 replacement is still v1.0.1"
  touch "$src/.patched"
fi

# 3. The build, one target at a time (progress per binary; the Go build cache carries shared
# packages from one to the next).
cat >"$work/version.env" <<EOF
KUBE_GIT_COMMIT=''
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_VERSION='v$version'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
EOF
export KUBE_GIT_VERSION_FILE="$work/version.env"
# -v: `go install` names each package it compiles, which the progress lines below count.
# The Makefile (hack/lib/golang.sh) makes its -tags list from "selinux,notest," and whatever
# follows -tags= in GOFLAGS, or all of GOFLAGS when there is none: GOFLAGS must end in -tags=…, or
# its spaces land in the tag list ("-tags space-separated list contains comma").
export GOPATH="$work/gopath" GOPROXY=off GOFLAGS="-p=$jobs -v -tags=notest" GOTOOLCHAIN=local
export KUBE_VERBOSE=2
for t in "${order[@]}"; do
  name=${t#cmd/}
  if [ -x "$src/_output/local/bin/linux/amd64/$name" ] && [ -f "$work/.built-$name" ]; then
    log "$name already built"
    continue
  fi
  budget_check "next: $name"
  t0=$(date +%s)
  log "building $name (go build -p $jobs under nice -n 19; log: $work/build-$name.log)"
  # Its own process group (setsid execs in place: a background job is no group leader), so that
  # the budget can end make and every go/compile under it. The log is appended to: a resumed
  # build's -v lines add up to what was compiled over all runs.
  (cd "$src" && exec setsid nice -n 19 make WHAT="$t" >>"$work/build-$name.log" 2>&1) &
  make_pid=$!
  # Progress: a line a minute with the packages compiled so far (go install -v lists them).
  while kill -0 "$make_pid" 2>/dev/null; do
    for _ in $(seq 60); do
      kill -0 "$make_pid" 2>/dev/null || break
      if over_budget; then
        kill -TERM -- "-$make_pid" 2>/dev/null || true
        wait "$make_pid" || true
        budget_check "$name: interrupted by the budget (resumes from the Go cache)"
      fi
      sleep 1
    done
    kill -0 "$make_pid" 2>/dev/null || break
    n=$(grep -cE '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.~-]+)*$' "$work/build-$name.log" || true)
    log "  $name: $n packages compiled, $(($(date +%s) - t0))s"
    progress "building $name"
  done
  if ! wait "$make_pid"; then
    tail -30 "$work/build-$name.log" >&2
    die "building $name failed (log: $work/build-$name.log)"
  fi
  touch "$work/.built-$name"
  log "built $name in $(($(date +%s) - t0))s"
  progress "built $name"
done

# 4. Into the cache.
mkdir -p "$dir/bin"
for t in "${targets[@]}"; do
  install -m 0755 "$src/_output/local/bin/linux/amd64/${t#cmd/}" "$dir/bin/"
done
printf 'version=%s\nkey=%s\ngolang-go=%s\nreflect2=%s\nbuilt=%s\nseconds=%s\nruns=%s\n' "$version" "$key" \
  "$go_ver" "$reflect2_ver" "$(date -u +%FT%TZ)" "$((spent_before + $(date +%s) - start))" "$runs" >"$dir/.complete"
# The source tree and Go cache (several GB) are not needed any more.
[ -n "${PODNET_KUBE_KEEP_BUILD:-}" ] || rm -rf "$work"
log "done in $(($(date +%s) - start))s: $dir/bin"
echo "$dir/bin"
