#!/bin/bash
# Runs opencontainers/runtime-tools validation programs against an OCI runtime and prints one line per
# test: PASS / FAIL / SKIP. The suite itself is built outside this repository (docs/runtime-tools.md):
#   $RT/bin/<test>.t                   one validation program per test (go build of validation/<test>)
#   $RT/run/rootfs-amd64.tar.gz        busybox rootfs the tests unpack into each bundle
#   $RT/run/runtimetest                static cmd/runtimetest, copied into bundles by the tests
# usage: scripts/runtime-tools.sh RUNTIME [TEST...]   (RT defaults to /tmp/rt; TAP goes to $RT/results/<label>/)
set -u
RT=${RT:-/tmp/rt}
runtime=$1; shift
label=${LABEL:-$(basename "$runtime")}
out=$RT/results/$label
mkdir -p "$out"
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=($(cd "$RT/bin" && ls *.t | sed 's/\.t$//'))
cd "$RT/run" || exit 1
for t in "${tests[@]}"; do
  start=$(date +%s)
  RUNTIME=$runtime timeout 180 "$RT/bin/$t.t" > "$out/$t.tap" 2> "$out/$t.err"; rc=$?
  # A test fails on a non-zero exit, a "not ok" line, or (tests that only print diagnostics) an error: line.
  if [ $rc -ne 0 ]; then res="FAIL (exit $rc)"
  elif grep -q '^not ok' "$out/$t.tap"; then res="FAIL ($(grep -c '^not ok' "$out/$t.tap") not ok)"
  elif grep -q '# SKIP' "$out/$t.tap" && ! grep -q '^ok [0-9]* -' "$out/$t.tap"; then res="SKIP"
  elif grep -q '^  error:' "$out/$t.tap" && ! grep -q '^ok' "$out/$t.tap"; then res="FAIL (error diagnostic)"
  else res="PASS"; fi
  echo "$t $res $(( $(date +%s) - start ))s"
done
