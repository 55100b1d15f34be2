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
    # The engine's version names the tag its default profile is at
    # (Debian's "20.10.24+dfsg1" is moby's v20.10.24).
    version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)
    version=${version%%+*}
    {
        echo "usage: $0 DEFAULT.json > percore-seccomp.json"
        echo "DEFAULT.json is Docker's default seccomp profile, moby's profiles/seccomp/default.json"
        echo "at your Docker's version, e.g.:"
        echo "  curl -fsSLO https://raw.githubusercontent.com/moby/moby/v${version:-VERSION}/profiles/seccomp/default.json"
        [ -n "$version" ] || echo "(VERSION: what \`docker version --format '{{.Server.Version}}'\` says)"
    } >&2
    exit 2
fi
jq '.syscalls += [{
        "names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
        "action": "SCMP_ACT_ALLOW",
        "comment": "percore: io_uring for network and file I/O"
    }]' "$1"
