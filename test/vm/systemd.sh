#!/usr/bin/env bash
# vordr under a real systemd in the test VM (issue 16):
#
#   bash test/vm/systemd.sh
#
# Debian's stock kernel, booted like test/vm/run.sh's flavors (the host's /
# over 9p, read-only, with a tmpfs overlay), but /init stages vordr's install
# and a saved policy into that root (test/vm/systemd/stage.sh) and hands it to
# the host's systemd as PID 1. The boot target, vordr-test.target, starts the
# cold-boot probe, vordr.service and vordr-test.service, which runs
# test/vm/systemd/*.test.mjs and powers off (test/vm/systemd/units/). The host
# judges the results and the kernel log as run.sh does; last line
# "N passed, M failed", exit status non-zero on any failure.
#
# Environment: as run.sh (VORDR_KO, VORDR_TIMEOUT_systemd (2400), VORDR_APPEND,
# VORDR_TESTS="test/vm/systemd/x.test.mjs", VORDR_QUIET=1), and
# VORDR_SYSD_RULES: how many rules the saved policy has (default 6).
exec bash "$(dirname "${BASH_SOURCE[0]}")/run.sh" systemd
