#!/usr/bin/env bash
# OFREP evaluation benchmark: wrk against one flagwire, three lines per round, in this order:
#   healthz  GET /healthz (no script): the reference, the server's cheapest route
#   single   POST /ofrep/v1/evaluate/flags/banner with a client key and a five-attribute
#            context (ofrep.lua); target: at least 0.6 x the /healthz rate of the same run
#   bulk     POST /ofrep/v1/evaluate/flags, the same contexts, every client-visible flag of
#            the environment (reported, no target)
# The environment holds a targeted string flag "banner" (a segment rule and an "in" rule),
# FLAGS more boolean flags (rules, rollouts, on, off) and the segment "staff". The contexts'
# targeting keys cycle through user-1 .. user-KEYS, country FR, so "banner" answers its
# default variant, which is checked with curl before measuring and on every answer of the
# warm-ups. The summary gives medians and the ratio OFREP/healthz.
#
# Environment (all optional):
#   ROUNDS=5          rounds of the three lines
#   DURATION=10s      length of each measured wrk run
#   WARMUP=3s         length of the warm-up run of each line
#   THREADS=2         wrk threads
#   CONNECTIONS=200   wrk connections (keep-alive)
#   SERVER_THREADS=2  flagwire --threads
#   KEYS=1000         distinct targeting keys (request bodies) per wrk thread
#   FLAGS=20          boolean flags besides "banner"
#   RESULTS_DIR=      when set, every raw wrk output is kept there
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-200}
SERVER_THREADS=${SERVER_THREADS:-2}
KEYS=${KEYS:-1000}
FLAGS=${FLAGS:-20}
RESULTS_DIR=${RESULTS_DIR:-}

for var in ROUNDS THREADS CONNECTIONS SERVER_THREADS KEYS FLAGS; do
  if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench: $var must be a positive integer, not '${!var}'" >&2
    exit 2
  fi
done
if [ "$CONNECTIONS" -lt "$THREADS" ]; then
  echo "bench: CONNECTIONS ($CONNECTIONS) must be at least THREADS ($THREADS)" >&2
  exit 2
fi

source scripts/deps.sh
ensure_packages "${BUILD_PACKAGES[@]}" wrk curl jq

BUILD_LOG=$(mktemp "${TMPDIR:-/tmp}/flagwire-bench-build.XXXXXX")
if ! { cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAGWIRE_TESTS=OFF &&
  cmake --build build-release; } >"$BUILD_LOG" 2>&1; then
  cat "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "bench: the release build failed" >&2
  exit 1
fi
rm -f "$BUILD_LOG"
FLAGWIRE=$PWD/build-release/flagwire
OFREP_LUA=$PWD/bench/ofrep/ofrep.lua

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flagwire-bench-ofrep.XXXXXX")
TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
AUTH="Authorization: Bearer $TOKEN"
FLAGWIRE_PID=

# Stops the server: SIGTERM, then SIGKILL after about 10 s.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$FLAGWIRE_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "bench: $*" >&2
  exit 1
}

# --- flagwire ---------------------------------------------------------------------------
FLAGWIRE_ADMIN_TOKEN=$TOKEN "$FLAGWIRE" serve --host 127.0.0.1 --port 0 \
  --threads "$SERVER_THREADS" --data "$WORK/data" --log-level warn \
  >"$WORK/flagwire.out" 2>"$WORK/flagwire.err" &
FLAGWIRE_PID=$!
FLAGWIRE_PORT=
for ((i = 0; i < 100; i++)); do
  FLAGWIRE_PORT=$(sed -n 's|^flagwire listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' \
    "$WORK/flagwire.out")
  [ -n "$FLAGWIRE_PORT" ] && break
  kill -0 "$FLAGWIRE_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$FLAGWIRE_PORT" ] || fail "flagwire did not start: $(cat "$WORK/flagwire.err")"
URL=http://127.0.0.1:$FLAGWIRE_PORT

# api STATUS METHOD PATH [BODY]: one management call; fails unless answered STATUS. The
# body of the answer goes to stdout.
api() {
  local want=$1 method=$2 path=$3 body=${4-} out=$WORK/api.out code
  if [ -n "$body" ]; then
    code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -X "$method" -H "$AUTH" \
      -H 'Content-Type: application/json' --data-binary "$body" "$URL$path") ||
      fail "$method $path: curl failed"
  else
    code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -X "$method" -H "$AUTH" \
      "$URL$path") || fail "$method $path: curl failed"
  fi
  [ "$code" = "$want" ] || fail "$method $path answered $code, not $want: $(head -c 500 "$out")"
  cat "$out"
}

# --- the environment --------------------------------------------------------------------
api 201 POST /v1/projects '{"key":"shop"}' >/dev/null
CLIENT_KEY=$(api 201 POST /v1/projects/shop/environments '{"key":"prod"}' | jq -er '.client_key')
[[ $CLIENT_KEY =~ ^[A-Za-z0-9_-]+$ ]] || fail "unexpected client key '$CLIENT_KEY'"
api 201 POST /v1/projects/shop/segments '{"key":"staff"}' >/dev/null
api 200 PUT /v1/projects/shop/environments/prod/segments/staff \
  '{"rules":[{"conditions":[{"attribute":"email","operator":"ends_with","value":"@shop.example"}]}]}' \
  >/dev/null
api 201 POST /v1/projects/shop/flags \
  '{"key":"banner","type":"string","client_visible":true,"variants":[{"key":"stable","value":"Welcome"},{"key":"eu","value":"Welkom"},{"key":"beta","value":"Hello, tester"}]}' \
  >/dev/null
api 200 PATCH /v1/projects/shop/environments/prod/flags/banner \
  '{"enabled":true,"on_variant":"stable","rules":[{"conditions":[{"segment":"staff"}],"variant":"beta"},{"conditions":[{"attribute":"country","operator":"in","value":["NL","BE"]}],"variant":"eu"}]}' \
  >/dev/null
# FLAGS boolean flags, client-visible, in five kinds of state: a plan rule, a 50/50 rollout,
# a segment rule with a 10/90 rollout, on, off.
for ((f = 1; f <= FLAGS; f++)); do
  key=$(printf 'feature-%02d' "$f")
  api 201 POST /v1/projects/shop/flags \
    "{\"key\":\"$key\",\"type\":\"boolean\",\"client_visible\":true}" >/dev/null
  case $((f % 5)) in
    1) state='{"enabled":true,"on_variant":"off","rules":[{"conditions":[{"attribute":"plan","operator":"in","value":["team","enterprise"]}],"variant":"on"}]}' ;;
    2) state='{"enabled":true,"rollout":[{"variant":"on","weight":50},{"variant":"off","weight":50}]}' ;;
    3) state='{"enabled":true,"rules":[{"conditions":[{"segment":"staff"}],"variant":"on"}],"rollout":[{"variant":"on","weight":10},{"variant":"off","weight":90}]}' ;;
    4) state='{"enabled":true}' ;;
    0) state='' ;;
  esac
  if [ -n "$state" ]; then
    api 200 PATCH "/v1/projects/shop/environments/prod/flags/$key" "$state" >/dev/null
  fi
done

# --- checking the answers ---------------------------------------------------------------
SINGLE=/ofrep/v1/evaluate/flags/banner
BULK=/ofrep/v1/evaluate/flags
CONTEXT='{"targetingKey":"user-1","country":"FR","email":"x@example.com","plan":"pro","beta":false}'
SINGLE_EXPECT='{"key":"banner","value":"Welcome","variant":"stable","reason":"DEFAULT","metadata":{}}'

# ofrep PATH CONTEXT: one OFREP call with the client key; prints "<status> <body>".
ofrep() {
  local out=$WORK/ofrep.out code
  code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $CLIENT_KEY" -H 'Content-Type: application/json' \
    --data-binary "{\"context\":$2}" "$URL$1") || fail "POST $1: curl failed"
  echo "$code $(cat "$out")"
}

check_answers() {
  local got
  got=$(ofrep "$SINGLE" "$CONTEXT")
  [ "$got" = "200 $SINGLE_EXPECT" ] || fail "$SINGLE (FR user) answered '$got'"
  # The rules do decide: staff get beta, NL/BE get eu.
  got=$(ofrep "$SINGLE" '{"targetingKey":"user-1","country":"FR","email":"ann@shop.example"}')
  [[ $got == '200 '*'"variant":"beta","reason":"TARGETING_MATCH"'* ]] ||
    fail "$SINGLE (staff) answered '$got'"
  got=$(ofrep "$SINGLE" '{"targetingKey":"user-1","country":"BE"}')
  [[ $got == '200 '*'"variant":"eu","reason":"TARGETING_MATCH"'* ]] ||
    fail "$SINGLE (BE) answered '$got'"
  got=$(ofrep "$BULK" "$CONTEXT")
  [ "${got%% *}" = 200 ] || fail "$BULK answered '$got'"
  jq -e --argjson n $((FLAGS + 1)) --argjson banner "$SINGLE_EXPECT" \
    '(.flags | length) == $n and (.flags | map(select(.key == "banner")) == [$banner])
     and all(.flags[]; .reason != "ERROR")' <<<"${got#* }" >/dev/null ||
    fail "$BULK did not answer $((FLAGS + 1)) flags with banner's default: ${got:0:500}"
  BULK_BYTES=$((${#got} - 4))
}
check_answers

# --- measuring --------------------------------------------------------------------------
# run_wrk LINE MODE DURATION OUTFILE: one wrk run of LINE (healthz, single or bulk).
run_wrk() {
  local line=$1 mode=$2 duration=$3 out=$4
  case $line in
    healthz)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "$URL/healthz" >"$out" 2>&1 ;;
    single)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency -s "$OFREP_LUA" "$URL" -- \
        "$CLIENT_KEY" "$SINGLE" "$KEYS" "$mode" "$SINGLE_EXPECT" >"$out" 2>&1 ;;
    bulk)
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency -s "$OFREP_LUA" "$URL" -- \
        "$CLIENT_KEY" "$BULK" "$KEYS" "$mode" "$SINGLE_EXPECT" >"$out" 2>&1 ;;
  esac || fail "wrk failed ($line): $(cat "$out")"
}

# parse_wrk FILE: prints "req_per_s p99_ms errors" from one wrk output; errors counts
# socket errors, 4xx/5xx answers (wrk's own count) and, in check mode, the answers the
# script found wrong.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return -1
    }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    /^bad responses:/ { err += $NF }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { n = $i; sub(/,/, "", n); err += n }
    }
    END {
      if (rps == "" || p99 == "") exit 1
      printf "%.0f %.2f %d\n", rps, p99, err
    }' "$1" || fail "could not read wrk output $1: $(cat "$1")"
}

median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit 1
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
  }'
}

keep() { # keep FILE: copies a raw output into RESULTS_DIR when set
  if [ -n "$RESULTS_DIR" ]; then
    mkdir -p "$RESULTS_DIR"
    cp "$1" "$RESULTS_DIR/"
  fi
}

LINES=(healthz single bulk)
echo "flagwire $URL (threads $SERVER_THREADS)," \
  "$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)," \
  "$(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds"
echo "environment prod: banner (string, segment rule + 'in' rule) and $FLAGS boolean flags," \
  "all client-visible; $KEYS targeting keys; bulk answer $BULK_BYTES bytes"

# Warm-ups: the OFREP ones read every answer and check its status and body.
for line in "${LINES[@]}"; do
  out=$WORK/warmup-$line.txt
  run_wrk "$line" check "$WARMUP" "$out"
  parsed=$(parse_wrk "$out")
  read -r _ _ errs <<<"$parsed"
  [ "$errs" -eq 0 ] ||
    fail "$errs bad answers or socket errors in the warm-up ($line): $(cat "$out")"
  if [ "$line" != healthz ]; then
    grep -q '^checked responses: [1-9]' "$out" ||
      fail "the warm-up ($line) checked nothing: $(cat "$out")"
    echo "warm-up $line: $(sed -n 's/^checked responses: //p' "$out") answers checked," \
      "all 2xx and as expected"
  fi
  keep "$out"
done

printf '\n%-5s  %-8s  %10s  %8s  %6s\n' round line "req/s" "p99 ms" errors
: >"$WORK/results"
for ((round = 1; round <= ROUNDS; round++)); do
  for line in "${LINES[@]}"; do
    out=$WORK/wrk-$round-$line.txt
    run_wrk "$line" fast "$DURATION" "$out"
    parsed=$(parse_wrk "$out")
    read -r rps p99 errs <<<"$parsed"
    printf '%-5s  %-8s  %10s  %8s  %6s\n' "$round" "$line" "$rps" "$p99" "$errs"
    echo "$round $line $rps $p99 $errs" >>"$WORK/results"
    keep "$out"
    [ "$errs" -eq 0 ] ||
      fail "$errs errors (4xx/5xx or socket) in round $round ($line): $(cat "$out")"
  done
done
check_answers

col() { # col LINE FIELD: one column of the results (3 req/s, 4 p99, 5 errors)
  awk -v l="$1" -v f="$2" '$2 == l { print $f }' "$WORK/results"
}

echo
echo "medians over $ROUNDS rounds"
printf '%-8s  %10s  %10s  %16s  %16s  %8s\n' line "req/s" "p99" "ratio (medians)" \
  "ratio (rounds)" target
h_rps=$(col healthz 3 | median)
for line in "${LINES[@]}"; do
  rps=$(col "$line" 3 | median)
  p99=$(col "$line" 4 | median)
  if [ "$line" = healthz ]; then
    printf '%-8s  %10.0f  %7.2f ms  %16s  %16s  %8s\n' "$line" "$rps" "$p99" - - -
    continue
  fi
  ratio=$(awk -v a="$rps" -v b="$h_rps" 'BEGIN { printf "%.2f", a / b }')
  # The runs of a round are seconds apart and share most of the noise.
  round_ratio=$(paste -d' ' <(col "$line" 3) <(col healthz 3) | awk '{ print $1 / $2 }' |
    median | awk '{ printf "%.2f", $1 }')
  verdict=-
  if [ "$line" = single ]; then
    verdict=$(awk -v a="$ratio" -v b="$round_ratio" \
      'BEGIN { print (a >= 0.6 && b >= 0.6 ? "met" : (a < 0.6 && b < 0.6 ? "MISSED" : "split")) }')
  fi
  printf '%-8s  %10.0f  %7.2f ms  %16s  %16s  %8s\n' "$line" "$rps" "$p99" "$ratio" \
    "$round_ratio" "$verdict"
done
echo "ratio (medians): median req/s / median /healthz req/s; ratio (rounds): median of the" \
  "per-round ratios. Target: single >= 0.60 x /healthz."
