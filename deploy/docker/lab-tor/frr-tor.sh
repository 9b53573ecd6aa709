#!/bin/sh
# The lab's FRR ToR (service tor-frr): zebra, bfdd and bgpd. bgpd asks bfdd for its BFD sessions
# (`neighbor X bfd` in frr.conf) through zebra, so the three run together; a TERM or INT stops
# all three, and so does bgpd exiting.
# Usage: frr-tor.sh <frr.conf> <run dir>
set -u
conf=$1
run=$2
# zebra and bfdd switch to the frr user, bgpd stays root (-S): the run directory is open to both.
common="--vty_socket $run -z $run/zserv.api --log stdout"
chmod 0777 "$run"
# shellcheck disable=SC2086
/usr/lib/frr/zebra -f /dev/null -i "$run/zebra.pid" $common &
zebra=$!
i=0
while [ ! -S "$run/zserv.api" ] && [ "$i" -lt 150 ]; do
  sleep 0.1
  i=$((i + 1))
done
# shellcheck disable=SC2086
/usr/lib/frr/bfdd -f /dev/null -i "$run/bfdd.pid" --bfdctl "$run/bfdd.sock" $common &
bfdd=$!
# shellcheck disable=SC2086
/usr/lib/frr/bgpd -f "$conf" -i "$run/bgpd.pid" -S $common &
bgpd=$!
trap 'kill "$bgpd" "$bfdd" "$zebra" 2>/dev/null; wait; exit 0' TERM INT
wait "$bgpd"
kill "$bfdd" "$zebra" 2>/dev/null
wait
