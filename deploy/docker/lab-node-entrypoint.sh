#!/bin/sh
# Entrypoint of compose.yaml's node containers (podnet-lab-node): makes the container's own
# /proc/sys/net writable, replaces Docker's default route with the node's gateway, then runs the
# command. Docker mounts /proc/sys read-only, and the CNI plugin and the agent write the pods'
# interface sysctls (/proc/sys/net/ipv4/conf/pn…/forwarding). Only /proc/sys/net is remounted: it
# holds the sysctls of the container's network namespace; the rest of /proc/sys (the host
# kernel's) stays read-only. Needs CAP_SYS_ADMIN and, where AppArmor runs, apparmor=unconfined
# (docker-default denies mount).
set -eu
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,rw /proc/sys/net
exec podnet-lab-gateway "$@"
