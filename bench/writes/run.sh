#!/usr/bin/env bash
# Writes and start-up benchmark.
#
# 1. Acknowledged flag toggles per second: wrk with toggle.lua, CONNECTIONS clients, each
#    request a POST .../environments/prod/flags/<flag>/toggle answered only once the write
#    is durable. Two servers run side by side, one with --durability full (the default)
#    and one with --durability normal; rounds alternate between them. Afterwards each
#    server's change log is read back page by page: its revisions must run 1..N without a
#    gap and N must cover every acknowledged toggle.
# 2. Start-up time on a store of START_FLAGS flags x 3 environments: populated once through
#    the API (curl --parallel), then started ROUNDS times, alternating with an empty store:
#    time from exec to the "listening" line and to the first 200 from /readyz, and VmRSS.
# 3. For comparison, acknowledged toggles per second as in 1 (--durability full) on that
#    large store: the cost of a write grows with the number of flags.
#
# Environment (all optional):
#   ROUNDS=5            rounds (toggles: one run per durability mode; start-up: one start
#                       of each store)
#   DURATION=10s        length of each measured wrk run
#   WARMUP=3s           length of the warm-up run against each server
#   THREADS=2           wrk threads
#   CONNECTIONS=32      wrk connections (keep-alive); as many flags are toggled
#   SERVER_THREADS=2    flagwire --threads
#   START_FLAGS=10000   flags in the start-up store
#   LOAD_PARALLEL=32    concurrent requests while populating it
#   RESULTS_DIR=        when set, every raw wrk output and the timings are kept there
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_THREADS=${SERVER_THREADS:-2}
START_FLAGS=${START_FLAGS:-10000}
LOAD_PARALLEL=${LOAD_PARALLEL:-32}
RESULTS_DIR=${RESULTS_DIR:-}

for var in ROUNDS THREADS CONNECTIONS SERVER_THREADS START_FLAGS LOAD_PARALLEL; do
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
TOGGLE_LUA=$PWD/bench/writes/toggle.lua

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flagwire-bench-writes.XXXXXX")
# The first admin token of every store this run creates.
TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
AUTH="Authorization: Bearer $TOKEN"
PIDS=()

# Stops one server: SIGTERM, then SIGKILL after about 10 s. Polls every 5 ms, which is
# the resolution of the "stop" time below.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 2000; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "bench: $*" >&2
  exit 1
}

# start_server NAME DATA [ARGS...]: starts flagwire on a free port; sets SERVER_PID and
# SERVER_URL. Output in $WORK/NAME.out and NAME.err.
start_server() {
  local name=$1 data=$2 i port=
  shift 2
  FLAGWIRE_ADMIN_TOKEN=$TOKEN "$FLAGWIRE" serve --host 127.0.0.1 --port 0 \
    --threads "$SERVER_THREADS" --data "$data" --log-level warn "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for ((i = 0; i < 600; i++)); do
    port=$(sed -n 's|^flagwire listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' \
      "$WORK/$name.out")
    [ -n "$port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || fail "flagwire ($name) did not start: $(cat "$WORK/$name.err")"
  SERVER_URL=http://127.0.0.1:$port
}

# api STATUS METHOD URL [BODY]: one management call; fails unless answered STATUS. The
# body of the answer goes to stdout.
api() {
  local want=$1 method=$2 url=$3 body=${4-} out code
  out=$WORK/api.out
  if [ -n "$body" ]; then
    code=$(curl -sS --max-time 120 -o "$out" -w '%{http_code}' -X "$method" -H "$AUTH" \
      -H 'Content-Type: application/json' --data-binary "$body" "$url") ||
      fail "$method $url: curl failed"
  else
    code=$(curl -sS --max-time 120 -o "$out" -w '%{http_code}' -X "$method" -H "$AUTH" \
      "$url") ||
      fail "$method $url: curl failed"
  fi
  [ "$code" = "$want" ] || fail "$method $url answered $code, not $want: $(head -c 500 "$out")"
  cat "$out"
}

# create_scope URL: project "shop" with environments prod, staging and dev.
create_scope() {
  local url=$1 env
  api 201 POST "$url/v1/projects" '{"key":"shop"}' >/dev/null
  for env in prod staging dev; do
    api 201 POST "$url/v1/projects/shop/environments" "{\"key\":\"$env\"}" >/dev/null
  done
}

# env_revision URL: the prod environment's revision.
env_revision() {
  api 200 GET "$1/v1/projects/shop/environments/prod" | jq -er '.revision'
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

echo "$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nproc) cores," \
  "flagwire --threads $SERVER_THREADS, $ROUNDS rounds"

# === 1. acknowledged toggles per second ==================================================

MODES=(full normal)
declare -A URL
for mode in "${MODES[@]}"; do
  start_server "toggle-$mode" "$WORK/toggle-$mode" --durability "$mode"
  URL[$mode]=$SERVER_URL
  create_scope "$SERVER_URL"
  for ((f = 0; f < CONNECTIONS; f++)); do
    api 201 POST "$SERVER_URL/v1/projects/shop/flags" "{\"key\":\"f$f\",\"type\":\"boolean\"}" \
      >/dev/null
  done
done

# run_wrk MODE DURATION OUTFILE: one toggle run against the server of MODE.
run_wrk() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -s "$TOGGLE_LUA" "${URL[$1]}" -- \
    "$TOKEN" shop prod f "$CONNECTIONS" "$THREADS" >"$3" 2>&1 ||
    fail "wrk failed against ${URL[$1]}: $(cat "$3")"
}

# parse_wrk FILE: prints "req_per_s p50_ms p99_ms requests errors" from one wrk output;
# errors counts socket errors and answers that are not 2xx.
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
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $2 == "requests" && $3 == "in" { n = $1 }
    /^non-2xx responses:/ { bad = $NF; seen = 1 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); err += v }
    }
    END {
      if (rps == "" || p50 == "" || p99 == "" || n == "" || !seen) exit 1
      printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, n, err + bad
    }' "$1" || fail "could not read wrk output $1: $(cat "$1")"
}

declare -A ACKED
for mode in "${MODES[@]}"; do
  run_wrk "$mode" "$WARMUP" "$WORK/warmup-$mode.txt"
  parsed=$(parse_wrk "$WORK/warmup-$mode.txt")
  read -r _ _ _ n errs <<<"$parsed"
  [ "$errs" -eq 0 ] || fail "errors during the warm-up ($mode): $(cat "$WORK/warmup-$mode.txt")"
  ACKED[$mode]=$n
done

echo
echo "1. toggles: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s toggle.lua" \
  "($CONNECTIONS flags, environment prod of 3)"
printf '%-5s  %-10s  %10s  %8s  %8s  %9s  %6s\n' round durability "toggles/s" "p50 ms" \
  "p99 ms" requests errors
: >"$WORK/toggles"
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in "${MODES[@]}"; do
    out=$WORK/toggle-$round-$mode.txt
    run_wrk "$mode" "$DURATION" "$out"
    parsed=$(parse_wrk "$out")
    read -r rps p50 p99 n errs <<<"$parsed"
    printf '%-5s  %-10s  %10s  %8s  %8s  %9s  %6s\n' "$round" "$mode" "$rps" "$p50" "$p99" \
      "$n" "$errs"
    echo "$round $mode $rps $p50 $p99 $n $errs" >>"$WORK/toggles"
    ACKED[$mode]=$((${ACKED[$mode]} + n))
    keep "$out"
    [ "$errs" -eq 0 ] ||
      fail "$errs errors (non-2xx or socket) in round $round ($mode): $(cat "$out")"
  done
done

# The change log of prod must hold revisions 1..N, N >= 1 (the environment) + CONNECTIONS
# (the flags) + every acknowledged toggle. Toggles in flight when wrk stopped may have been
# committed without being counted: at most CONNECTIONS per wrk run.
echo
echo "change log check (GET .../environments/prod/changes?after=...&limit=1000, every page)"
for mode in "${MODES[@]}"; do
  url=${URL[$mode]}
  t0=${EPOCHREALTIME/[.,]/}
  revision=$(env_revision "$url")
  : >"$WORK/revisions"
  after=0
  max_pages=$((revision / 1000 + 2))
  for ((page = 0; page < max_pages; page++)); do
    api 200 GET "$url/v1/projects/shop/environments/prod/changes?after=$after&limit=1000" \
      >"$WORK/page.json"
    jq -er '.items[].revision' "$WORK/page.json" >>"$WORK/revisions" ||
      [ "$(jq '.items | length' "$WORK/page.json")" = 0 ] ||
      fail "unreadable change page after $after ($mode)"
    after=$(jq -r '.next_after' "$WORK/page.json")
    [ "$after" = null ] && break
  done
  [ "$after" = null ] || fail "the change log ($mode) did not end within $max_pages pages"
  checked=$(awk '
    $1 != NR { bad = 1 } { last = $1 }
    END { print NR, (bad ? "no" : "yes"), last + 0 }' "$WORK/revisions")
  read -r count contiguous last <<<"$checked"
  acked=${ACKED[$mode]}
  floor=$((1 + CONNECTIONS + acked))
  runs=$((ROUNDS + 1))
  t1=${EPOCHREALTIME/[.,]/}
  printf '%-6s  entries %d, revisions 1..%d contiguous: %s, environment revision %d,' \
    "$mode" "$count" "$last" "$contiguous" "$revision"
  printf ' acknowledged toggles %d, committed beyond them %d (in flight at the ends of %d runs);' \
    "$acked" "$((count - floor))" "$runs"
  printf ' read in %.1f s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e6 }')"
  [ "$contiguous" = yes ] || fail "the change log ($mode) has a gap"
  [ "$count" -eq "$revision" ] || fail "the change log ($mode) ends at $count, revision $revision"
  [ "$count" -ge "$floor" ] || fail "the change log ($mode) misses acknowledged toggles"
  [ "$count" -le $((floor + runs * CONNECTIONS)) ] ||
    fail "the change log ($mode) holds more toggles than were sent"
done

# Stop the toggle servers now: the start-up timings want a quiet machine.
for pid in "${PIDS[@]}"; do
  stop_pid "$pid"
done
PIDS=()

# === 2. start-up on a store of START_FLAGS flags x 3 environments =========================

echo
echo "2. start-up: populating a store with $START_FLAGS flags x 3 environments" \
  "(curl --parallel --parallel-max $LOAD_PARALLEL)"
start_server populate "$WORK/store-big"
create_scope "$SERVER_URL"
# One curl, START_FLAGS transfers, LOAD_PARALLEL at a time over reused connections.
awk -v n="$START_FLAGS" -v url="$SERVER_URL/v1/projects/shop/flags" -v auth="$AUTH" 'BEGIN {
  for (i = 1; i <= n; i++) {
    if (i > 1) print "next"
    printf "url = \"%s\"\n", url
    printf "header = \"%s\"\n", auth
    print "header = \"Content-Type: application/json\""
    printf "data = \"{\\\"key\\\":\\\"flag-%05d\\\",\\\"type\\\":\\\"boolean\\\"}\"\n", i
    print "output = \"/dev/null\""
    print "max-time = 60"
    print "write-out = \"%{http_code}\\n\""
  }
}' >"$WORK/load.curlrc"
t0=${EPOCHREALTIME/[.,]/} # microseconds: EPOCHREALTIME always has six decimals
curl -sS --no-progress-meter --parallel --parallel-max "$LOAD_PARALLEL" --parallel-immediate \
  -K "$WORK/load.curlrc" >"$WORK/load.codes" 2>"$WORK/load.err" ||
  fail "the loader failed: $(head -c 500 "$WORK/load.err")"
t1=${EPOCHREALTIME/[.,]/}
created=$(grep -c '^201$' "$WORK/load.codes" || true)
[ "$created" -eq "$START_FLAGS" ] ||
  fail "$created of $START_FLAGS flags created; answers:" \
    "$(sort "$WORK/load.codes" | uniq -c | tr '\n' ' ')"
revision=$(env_revision "$SERVER_URL")
[ "$revision" -eq $((START_FLAGS + 1)) ] ||
  fail "prod is at revision $revision after $START_FLAGS flags, not $((START_FLAGS + 1))"
load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
load_rate=$(awk -v a="$t0" -v b="$t1" -v n="$START_FLAGS" \
  'BEGIN { printf "%.0f", n / ((b - a) / 1e6) }')
echo "populated: $START_FLAGS flags created (201) in $load_s s ($load_rate flags/s);" \
  "prod at revision $revision"
stop_pid "$SERVER_PID"
PIDS=()

# The empty store for comparison: only the first admin token.
start_server empty "$WORK/store-empty"
stop_pid "$SERVER_PID"
PIDS=()

db_size() { # db_size DIR: "<db bytes> <wal bytes>"
  local db=0 wal=0
  [ -f "$1/flagwire.db" ] && db=$(stat -c %s "$1/flagwire.db")
  [ -f "$1/flagwire.db-wal" ] && wal=$(stat -c %s "$1/flagwire.db-wal")
  echo "$db $wal"
}
sizes=$(db_size "$WORK/store-big")
read -r big_db big_wal <<<"$sizes"

# timed_start DATA: starts flagwire on DATA, measures, stops it; sets LISTEN_MS, READY_MS,
# RSS_KB and STOP_MS. The clock starts just before the fork; "listening" is the moment the
# line is read from the server's standard output (a FIFO); "ready" the moment GET /readyz,
# sent over a socket from this shell (no fork), is answered 200; RSS is VmRSS read then;
# "stop" runs from SIGTERM to the end of the process.
timed_start() {
  local data=$1 fifo=$WORK/stdout.fifo fd sock line="" port="" pid t0 t1 t2 t3 t4 i
  local code=""
  rm -f "$fifo"
  mkfifo "$fifo"
  exec {fd}<>"$fifo" # read-write: opening never blocks, whatever the server does
  t0=${EPOCHREALTIME/[.,]/}
  FLAGWIRE_ADMIN_TOKEN=$TOKEN "$FLAGWIRE" serve --host 127.0.0.1 --port 0 \
    --threads "$SERVER_THREADS" --data "$data" --log-level warn >"$fifo" 2>"$WORK/timed.err" &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 5; i++)); do
    read -r -t 60 -u "$fd" line || fail "no listening line from flagwire: $(cat "$WORK/timed.err")"
    port=$(sed -n 's|^flagwire listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' <<<"$line")
    [ -n "$port" ] && break
  done
  t1=${EPOCHREALTIME/[.,]/}
  [ -n "$port" ] || fail "flagwire printed no listening line: $line"
  for ((i = 0; i < 2000; i++)); do
    if exec {sock}<>"/dev/tcp/127.0.0.1/$port"; then
      printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&"$sock"
      read -r -t 5 -u "$sock" _ code _ || true
      exec {sock}>&-
      [ "$code" = 200 ] && break
    fi
    sleep 0.001
  done 2>/dev/null
  t2=${EPOCHREALTIME/[.,]/}
  [ "$code" = 200 ] || fail "/readyz did not answer 200"
  RSS_KB=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
  t3=${EPOCHREALTIME/[.,]/}
  stop_pid "$pid"
  t4=${EPOCHREALTIME/[.,]/}
  PIDS=()
  exec {fd}>&-
  rm -f "$fifo"
  LISTEN_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  READY_MS=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  STOP_MS=$(awk -v a="$t3" -v b="$t4" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
}

echo
echo "start-up: exec -> 'listening' line and -> first 200 from /readyz, then SIGTERM" \
  "(page cache warm)"
printf '%-5s  %-9s  %12s  %10s  %9s  %8s\n' round store "listening ms" "ready ms" "RSS kB" \
  "stop ms"
: >"$WORK/starts"
for ((round = 1; round <= ROUNDS; round++)); do
  for store in big empty; do
    timed_start "$WORK/store-$store"
    printf '%-5s  %-9s  %12s  %10s  %9s  %8s\n' "$round" "$store" "$LISTEN_MS" "$READY_MS" \
      "$RSS_KB" "$STOP_MS"
    echo "$round $store $LISTEN_MS $READY_MS $RSS_KB $STOP_MS" >>"$WORK/starts"
  done
done
keep "$WORK/starts"

# === 3. toggles on the large store =======================================================

echo
echo "3. toggles on the store of $START_FLAGS flags (--durability full), as in 1"
start_server toggle-big "$WORK/store-big"
URL[big]=$SERVER_URL
for ((f = 0; f < CONNECTIONS; f++)); do
  api 201 POST "$SERVER_URL/v1/projects/shop/flags" "{\"key\":\"f$f\",\"type\":\"boolean\"}" \
    >/dev/null
done
run_wrk big "$WARMUP" "$WORK/warmup-big.txt"
parsed=$(parse_wrk "$WORK/warmup-big.txt")
read -r _ _ _ n errs <<<"$parsed"
[ "$errs" -eq 0 ] || fail "errors during the warm-up (big): $(cat "$WORK/warmup-big.txt")"
ACKED[big]=$n
printf '%-5s  %-10s  %10s  %8s  %8s  %9s  %6s\n' round durability "toggles/s" "p50 ms" \
  "p99 ms" requests errors
for ((round = 1; round <= ROUNDS; round++)); do
  out=$WORK/toggle-$round-big.txt
  run_wrk big "$DURATION" "$out"
  parsed=$(parse_wrk "$out")
  read -r rps p50 p99 n errs <<<"$parsed"
  printf '%-5s  %-10s  %10s  %8s  %8s  %9s  %6s\n' "$round" full "$rps" "$p50" "$p99" "$n" "$errs"
  echo "$round big $rps $p50 $p99 $n $errs" >>"$WORK/toggles"
  ACKED[big]=$((ACKED[big] + n))
  keep "$out"
  [ "$errs" -eq 0 ] ||
    fail "$errs errors (non-2xx or socket) in round $round (big): $(cat "$out")"
done
# The cheap check here: prod's revision covers the flags and every acknowledged toggle.
revision=$(env_revision "$SERVER_URL")
floor=$((1 + START_FLAGS + CONNECTIONS + ACKED[big]))
echo "prod at revision $revision, at least $floor expected"
[ "$revision" -ge "$floor" ] || fail "prod's revision misses acknowledged toggles (big)"
stop_pid "$SERVER_PID"
PIDS=()

# === summary ==============================================================================

tcol() { awk -v m="$1" -v f="$2" '$2 == m { print $f }' "$WORK/toggles"; }
scol() { awk -v s="$1" -v f="$2" '$2 == s { print $f }' "$WORK/starts"; }

echo
echo "medians over $ROUNDS rounds"
printf '%-22s  %10s  %8s  %8s  %10s\n' "toggles (c$CONNECTIONS)" "toggles/s" "p50 ms" "p99 ms" \
  "target"
for mode in "${MODES[@]}" big; do
  rps=$(tcol "$mode" 3 | median)
  verdict=$(awk -v r="$rps" 'BEGIN { print (r >= 1000 ? "met" : "MISSED") }')
  label="--durability $mode"
  case $mode in
    normal) verdict="-" ;;
    big) label="full, $START_FLAGS flags" ;;
  esac
  printf '%-22s  %10.0f  %8.2f  %8.2f  %10s\n' "$label" "$rps" \
    "$(tcol "$mode" 4 | median)" "$(tcol "$mode" 5 | median)" "$verdict"
done
echo "target: >= 1000 acknowledged toggles/s with --durability full"
echo
printf '%-26s  %12s  %10s  %9s  %8s\n' "start-up" "listening ms" "ready ms" "RSS kB" "stop ms"
for store in big empty; do
  if [ "$store" = big ]; then label="$START_FLAGS flags x 3 envs"; else label="empty store"; fi
  printf '%-26s  %12.1f  %10.1f  %9.0f  %8.1f\n' "$label" "$(scol "$store" 3 | median)" \
    "$(scol "$store" 4 | median)" "$(scol "$store" 5 | median)" "$(scol "$store" 6 | median)"
done
echo "store of $START_FLAGS flags: flagwire.db $big_db bytes" \
  "($(awk -v b="$big_db" 'BEGIN { printf "%.1f", b / 1048576 }') MiB), WAL $big_wal bytes" \
  "after a clean stop"
keep "$WORK/toggles"
