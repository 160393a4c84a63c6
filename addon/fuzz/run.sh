#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Builds the wire-format fuzz harness with g++'s AddressSanitizer and
# UndefinedBehaviorSanitizer (no clang needed) and runs it.
#   addon/fuzz/run.sh [INPUTS [SEED]]     (defaults: 200000 1)
# Exits non-zero on a build failure, a crash or any sanitizer report.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${VORDR_FUZZ_OUT:-$here/../build/fuzz}
mkdir -p "$out"
${CXX:-g++} -std=gnu++17 -O1 -g -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -Werror -I"$here/../.." \
	-o "$out/decode_fuzz" \
	"$here/decode_fuzz.cc" "$here/driver.cc" \
	"$here/../src/wire.cc" "$here/../src/schema.cc"
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	exec "$out/decode_fuzz" "${1:-200000}" "${2:-1}"
