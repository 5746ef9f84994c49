#!/usr/bin/env bash
# Evaluation engine benchmark: builds the release library, compiles bench/eval/eval_bench.c
# against it and runs it on one thread. Prints a Markdown table of evaluations per second
# (median, min and max of the runs).
#
# Environment (all optional):
#   RUNS=5          measured runs per case (the median is reported)
#   RUN_SECONDS=1   length of each run
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
RUN_SECONDS=${RUN_SECONDS:-1}
if ! [[ $RUNS =~ ^[1-9][0-9]?$ ]]; then
  echo "bench: RUNS must be from 1 to 99, not '$RUNS'" >&2
  exit 2
fi
if ! [[ $RUN_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  echo "bench: RUN_SECONDS must be a number of seconds, not '$RUN_SECONDS'" >&2
  exit 2
fi

source scripts/deps.sh
ensure_packages "${BUILD_PACKAGES[@]}"

cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAGWIRE_TESTS=OFF >/dev/null
cmake --build build-release >/dev/null

BIN=build-release/eval_bench
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
cc -std=c17 -O2 -D_GNU_SOURCE -Isrc bench/eval/eval_bench.c build-release/libflagwire_core.a \
  $(pkg-config --libs libuv jansson sqlite3 libcrypto libpcre2-8) -lhttp_parser -lpthread -lm \
  -o "$BIN"

echo "flagwire eval bench: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
  sed 's/^ *//'), $(uname -sr), $(cc --version | head -1); $RUNS runs of ${RUN_SECONDS}s per case"
"$BIN" "$RUNS" "$RUN_SECONDS"
