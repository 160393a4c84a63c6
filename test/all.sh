#!/usr/bin/env bash
# The whole test suite (what `npm test` and CI run):
#
#   bash test/all.sh
#
# The unit tests first (they build the addon and the daemon the VMs use),
# then the kernel tests in two lanes at once, one VM each (one lane's VM is
# often waiting, on a timeout, a server or 9p, while the other computes):
#
#   lane 1: Debian's stock kernel: test/vm/run.sh stock, then the real
#           systemd (test/vm/systemd.sh, a saved policy of VORDR_SYSD_RULES
#           rules, 10,000 here), then the Debian packages (test/vm/deb.sh:
#           built, lintian, installed, upgraded and purged in the VM), then
#           ./try --tour (README's first command, its guided tour scripted)
#   lane 2: the debug kernel (KASAN, lockdep, kmemleak): its build, cached
#           (test/vm/debug-kernel.sh), then test/vm/run.sh debug
#
# Each lane's output is prefixed with its name and kept whole in
# test/vm/out/lane-N.log. Last lines: each harness's result, then
# "N passed, M failed" over all; exit status non-zero on any failure.
#
# Environment: what the harnesses take (VORDR_TESTS, VORDR_QUIET, ...);
# VORDR_SYSD_RULES (10000); VORDR_LANES="1 2" (run only these);
# VORDR_SKIP="deb ..." (harnesses not run, shown as skipped, with
# VORDR_SKIP_WHY: ./check on Ubuntu);
# VORDR_DEB_VM (test/vm/deb.sh: 1, the full form, by default; ci: one DKMS
# build, install and purge; 0: no VM); VORDR_BENCH=short: the benchmark's
# short form after the debug lane (CI).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=test/vm/out
mkdir -p "$out"
start=$SECONDS

say() { echo "all: $* ($((SECONDS - start)) s)"; }

# step LANE NAME COMMAND...: one harness; its output also in
# $out/NAME.log, its last "N passed, M failed" line, exit status and
# seconds in $out/step-NAME.
step() {
  local lane=$1 name=$2 t=$SECONDS rc last
  shift 2
  # VORDR_SKIP="NAME ...": harnesses this machine cannot run (./check on
  # Ubuntu: the Debian-only ones), shown as skipped with VORDR_SKIP_WHY.
  if [[ " ${VORDR_SKIP:-} " == *" $name "* ]]; then
    echo "lane $lane: $name skipped: ${VORDR_SKIP_WHY:-VORDR_SKIP}"
    printf '%s\t0\t0\tskipped: %s\n' "$name" "${VORDR_SKIP_WHY:-VORDR_SKIP}" >"$out/step-$name"
    return 0
  fi
  echo "lane $lane: $name begins"
  "$@" 2>&1 | tee "$out/$name.log"
  rc=${PIPESTATUS[0]}
  last=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed$' "$out/$name.log" | tail -n1)
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t))" "${last:-no result line}" >"$out/step-$name"
  echo "lane $lane: $name ends: exit $rc in $((SECONDS - t)) s"
}

lane1() {
  step 1 stock bash test/vm/run.sh stock
  step 1 systemd env VORDR_SYSD_RULES="${VORDR_SYSD_RULES:-10000}" bash test/vm/systemd.sh
  step 1 deb bash test/vm/deb.sh
  # README's first command without a person: ./try --tour (its set-up
  # checks, then the scripted tour of the try VM, screens kept).
  step 1 tour ./try --yes --tour
}
lane2() {
  step 2 debug bash test/vm/run.sh debug
  # VORDR_BENCH=short (CI): the benchmark's short form, on the instruction
  # clock, which lane 1's load cannot move; it reports, it does not judge.
  if [[ ${VORDR_BENCH:-} == short ]]; then
    step 2 bench env BENCH_CLOCK=icount bash bench/run.sh --short
  fi
}

say "unit tests"
npm run test:unit
unit_rc=$?
say "unit tests: exit $unit_rc"

rm -f "$out"/step-*
lanes=${VORDR_LANES:-1 2}
pids=()
for l in $lanes; do
  # The lane's own log first (whole), the prefixed copy on standard output.
  ( "lane$l" 2>&1 | tee "$out/lane-$l.log" | sed -u "s/^/[$l] /" ) &
  pids+=($!)
done
wait "${pids[@]}"

echo "===== all: summary ====="
total_pass=0 total_fail=0
((unit_rc == 0)) || { total_fail=$((total_fail + 1)); echo "unit tests: FAILED (exit $unit_rc)"; }
for f in "$out"/step-*; do
  [[ -e $f ]] || continue
  IFS=$'\t' read -r name rc secs last <"$f"
  p=$(sed -n 's/^\([0-9]*\) passed.*/\1/p' <<<"$last"); p=${p:-0}
  n=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$last"); n=${n:-0}
  # A harness that exits non-zero with no failure counted still fails.
  ((rc != 0 && n == 0)) && n=1
  total_pass=$((total_pass + p)); total_fail=$((total_fail + n))
  [[ $name == bench ]] && ((rc == 0)) && last="a report, not judged"
  echo "$name: $last (exit $rc, $secs s)"
  # What failed, by name, here at the end where a log's tail is all one
  # may get to see (the whole of it is in $out/NAME.log).
  if ((n > 0)); then
    sed -E 's/^(\[[^]]*\] *)+//' "$out/$name.log" 2>/dev/null | grep -a -E '^\s*not ok ' | head -n 20 | sed "s/^/  $name: /"
  fi
done
echo "in $((SECONDS - start)) s"
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
