#!/bin/sh
# Writes a Docker seccomp profile that is DEFAULT (Docker's default
# profile, moby's profiles/seccomp/default.json, given as a file) with
# exactly io_uring's three system calls allowed on top:
#
#   deploy/seccomp.sh default.json > percore-seccomp.json
#   docker run --security-opt seccomp=percore-seccomp.json …
#
# Needs jq. Nothing else in the profile changes.
set -eu
if [ $# -ne 1 ] || [ ! -r "$1" ]; then
    echo "usage: $0 DOCKER_DEFAULT_SECCOMP_JSON > percore-seccomp.json" >&2
    exit 2
fi
jq '.syscalls += [{
        "names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
        "action": "SCMP_ACT_ALLOW",
        "comment": "percore: io_uring for network and file I/O"
    }]' "$1"
