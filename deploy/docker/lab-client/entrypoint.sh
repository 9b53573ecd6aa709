#!/bin/sh
# Replaces Docker's default route with the ToR, so that pods are reached only through it.
set -eu
if [ -n "${LAB_GATEWAY_V4:-}" ]; then ip route replace default via "$LAB_GATEWAY_V4"; fi
if [ -n "${LAB_GATEWAY_V6:-}" ]; then ip -6 route replace default via "$LAB_GATEWAY_V6"; fi
exec "$@"
