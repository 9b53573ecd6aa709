#!/bin/sh
# podnet CNI plugin launcher in the agent image: this image's Node runs the bundle beside this file.
case $0 in */*) d=${0%/*} ;; *) d=. ;; esac
exec node "$d/podnet-cni.js"
