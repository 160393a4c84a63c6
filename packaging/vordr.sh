#!/bin/sh
# /usr/bin/vordr: the daemon installed in /usr/lib/vordr, run by the nodejs
# package's node (>= 20; the vordr package depends on it).
exec /usr/bin/node /usr/lib/vordr/daemon/dist/cli.js "$@"
