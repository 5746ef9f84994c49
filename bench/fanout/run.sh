#!/usr/bin/env bash
# Fan-out benchmark: N Server-Sent Events streams or WebSockets held open on one server, then
# one change at a time, timed from just before it is sent to its arrival on every stream.
# flagwire is measured against nginx + nchan (the reference) in the same run; rounds
# alternate the two so that the noise of a shared machine falls on both, and the summary
# gives medians and the ratios flagwire/nchan, per transport. Every line starts a fresh
# server, so each memory figure is that of one server going from no stream to N.
#
# Lines, per round and per N, over Server-Sent Events:
#   flagwire   GET /v1/stream?key=<client key>; the change is a toggle of a client-visible
#              boolean flag through the management API (answered once every loop has it)
#   nchan      GET /sub?id=<channel> (eventsource); the change is POST /pub?id=<channel>
#   contexts   flagwire again, each stream with its own context ({"targetingKey":"user-<i>"})
# and over WebSocket (docs/protocol.md section 6), the same changes:
#   flagwire-ws  GET /v1/ws?key=<client key>, then subscribe to the channel `flags`
#   nchan-ws     GET /ws?id=<channel> (websocket)
#   contexts-ws  (WS_CONTEXTS=1) flagwire-ws, each socket's subscribe with its own context
# Then, ROUNDS times per transport, a reconnect storm: STORM_STREAMS flagwire streams,
# SIGTERM, flagwire restarted on the same port and data; the time until every stream is back,
# then STORM_TOGGLES changes to check that none is lost.
#
# Environment (all optional):
#   TRANSPORTS="sse ws"  which transports' lines run (sse, ws or both)
#   ROUNDS=3           alternating rounds
#   NS="1000 10000 max" stream counts; "max" is flagwire's stream cap rounded down to 100
#   TOGGLES=50         changes per line
#   PAUSE_MS=100       pause between two changes
#   TIMEOUT_MS=10000   a stream that has not received a change this long after it was sent
#                      has missed it
#   CONTEXTS=1         0 skips the context line over SSE
#   WS_CONTEXTS=0      1 adds the context line over WebSocket
#   STORM_STREAMS=10000  streams of the reconnect storm, for each transport (0 skips it)
#   STORM_TOGGLES=5    changes after each storm
#   KEY=client         client: ?key=<client key>; server: Authorization: Bearer <server key>
#                      (either transport)
#   DURABILITY=full    flagwire --durability (full: every toggle waits for its fsync)
#   TIME_BUDGET=1200   seconds; once spent, no further line is started
#   RESULTS_DIR=       when set, every generator output is kept there
#   BUILD_DIR=build-release  where flagwire (Release) and the generator are built
set -euo pipefail
cd "$(dirname "$0")/../.."

TRANSPORTS=${TRANSPORTS:-sse ws}
ROUNDS=${ROUNDS:-3}
NS=${NS:-1000 10000 max}
TOGGLES=${TOGGLES:-50}
PAUSE_MS=${PAUSE_MS:-100}
TIMEOUT_MS=${TIMEOUT_MS:-10000}
CONTEXTS=${CONTEXTS:-1}
WS_CONTEXTS=${WS_CONTEXTS:-0}
STORM_STREAMS=${STORM_STREAMS:-10000}
STORM_TOGGLES=${STORM_TOGGLES:-5}
KEY=${KEY:-client}
DURABILITY=${DURABILITY:-full}
TIME_BUDGET=${TIME_BUDGET:-1200}
RESULTS_DIR=${RESULTS_DIR:-}
BUILD_DIR=${BUILD_DIR:-build-release}
SERVER_THREADS=2 # flagwire --threads; nchan.conf.in has worker_processes 2

for var in ROUNDS TOGGLES TIMEOUT_MS TIME_BUDGET; do
  if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench: $var must be a positive integer, not '${!var}'" >&2
    exit 2
  fi
done
for var in PAUSE_MS CONTEXTS WS_CONTEXTS STORM_STREAMS STORM_TOGGLES; do
  if ! [[ ${!var} =~ ^[0-9]+$ ]]; then
    echo "bench: $var must be a non-negative integer, not '${!var}'" >&2
    exit 2
  fi
done
for n in $NS; do
  if ! [[ $n =~ ^[1-9][0-9]*$ || $n == max ]]; then
    echo "bench: NS holds '$n', neither a positive integer nor 'max'" >&2
    exit 2
  fi
done
for t in $TRANSPORTS; do
  if [[ $t != sse && $t != ws ]]; then
    echo "bench: TRANSPORTS holds '$t', neither sse nor ws" >&2
    exit 2
  fi
done
[ -n "${TRANSPORTS// /}" ] || {
  echo "bench: TRANSPORTS is empty" >&2
  exit 2
}
case $DURABILITY in full | normal) ;; *)
  echo "bench: DURABILITY must be full or normal, not '$DURABILITY'" >&2
  exit 2
  ;;
esac
case $KEY in client | server) ;; *)
  echo "bench: KEY must be client or server, not '$KEY'" >&2
  exit 2
  ;;
esac

source scripts/deps.sh
ensure_packages "${BUILD_PACKAGES[@]}" nginx libnginx-mod-nchan curl jq

NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
[ -f "$NCHAN_MODULE" ] || {
  echo "bench: $NCHAN_MODULE is missing (Debian package libnginx-mod-nchan)" >&2
  exit 1
}

BUILD_LOG=$(mktemp "${TMPDIR:-/tmp}/flagwire-bench-build.XXXXXX")
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
if ! { cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAGWIRE_TESTS=OFF &&
  cmake --build "$BUILD_DIR" &&
  cc -std=c17 -O2 -Wall -Wextra -Werror bench/fanout/loadgen.c \
    $(pkg-config --cflags --libs libuv) -o "$BUILD_DIR/fanout_loadgen"; } >"$BUILD_LOG" 2>&1; then
  cat "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "bench: the build failed" >&2
  exit 1
fi
rm -f "$BUILD_LOG"
FLAGWIRE=$(realpath "$BUILD_DIR")/flagwire
LOADGEN=$(realpath "$BUILD_DIR")/fanout_loadgen
NCHAN_CONF_IN=$PWD/bench/fanout/nchan.conf.in

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flagwire-bench-fanout.XXXXXX")
TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
AUTH="Authorization: Bearer $TOKEN"
FLAGWIRE_PID=
NGINX_PID=
LOADGEN_PID=
STARTED=$SECONDS

# Stops one process we started: a signal, then SIGKILL after about 10 s.
stop_pid() {
  local pid=$1 sig=$2 i
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$LOADGEN_PID" TERM
  stop_pid "$FLAGWIRE_PID" TERM
  stop_pid "$NGINX_PID" QUIT
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
# start_flagwire PORT: a server on the bench's data directory (PORT 0: any free port). Sets
# FLAGWIRE_PID and FLAGWIRE_PORT.
start_flagwire() {
  : >"$WORK/flagwire.out"
  FLAGWIRE_ADMIN_TOKEN=$TOKEN "$FLAGWIRE" serve --host 127.0.0.1 --port "$1" \
    --threads "$SERVER_THREADS" --durability "$DURABILITY" --data "$WORK/data" \
    --log-level info --log-format json \
    >"$WORK/flagwire.out" 2>>"$WORK/flagwire.err" &
  FLAGWIRE_PID=$!
  FLAGWIRE_PORT=
  local i
  for ((i = 0; i < 300; i++)); do
    FLAGWIRE_PORT=$(sed -n 's|^flagwire listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' \
      "$WORK/flagwire.out")
    [ -n "$FLAGWIRE_PORT" ] && return 0
    kill -0 "$FLAGWIRE_PID" 2>/dev/null || break
    sleep 0.01
  done
  fail "flagwire did not start: $(tail -n 5 "$WORK/flagwire.err")"
}

stop_flagwire() {
  stop_pid "$FLAGWIRE_PID" TERM
  FLAGWIRE_PID=
}

# api STATUS METHOD PATH [BODY]: one management call; fails unless answered STATUS. The
# body of the answer goes to stdout.
api() {
  local want=$1 method=$2 path=$3 body=${4-} out=$WORK/api.out code
  code=$(curl -sS --max-time 30 -o "$out" -w '%{http_code}' -X "$method" -H "$AUTH" \
    -H 'Content-Type: application/json' ${body:+--data-binary "$body"} \
    "http://127.0.0.1:$FLAGWIRE_PORT$path") || fail "$method $path: curl failed"
  [ "$code" = "$want" ] || fail "$method $path answered $code, not $want: $(head -c 500 "$out")"
  cat "$out"
}

start_flagwire 0
api 201 POST /v1/projects '{"key":"bench","name":"Bench"}' >/dev/null
api 201 POST /v1/projects/bench/environments '{"key":"prod","name":"Prod"}' >"$WORK/env.json"
CLIENT_KEY=$(jq -er .client_key "$WORK/env.json")
SERVER_KEY=$(jq -er .server_key "$WORK/env.json")
[[ $CLIENT_KEY =~ ^fw_cli_[A-Za-z0-9_-]+$ ]] || fail "unexpected client key '$CLIENT_KEY'"
api 201 POST /v1/projects/bench/flags '{"key":"kill","type":"boolean","client_visible":true}' \
  >/dev/null
TOGGLE_PATH=/v1/projects/bench/environments/prod/flags/kill/toggle
if [ "$KEY" = client ]; then
  FLAGWIRE_STREAM=(--stream "/v1/stream?key=$CLIENT_KEY")
  FLAGWIRE_WS=(--stream "/v1/ws?key=$CLIENT_KEY")
else
  FLAGWIRE_STREAM=(--stream /v1/stream --stream-token "$SERVER_KEY")
  FLAGWIRE_WS=(--stream /v1/ws --stream-token "$SERVER_KEY")
fi
# flagwire_target TRANSPORT: sets TARGET to the generator's arguments for flagwire's streams.
flagwire_target() {
  if [ "$1" = ws ]; then
    TARGET=(--transport ws "${FLAGWIRE_WS[@]}")
  else
    TARGET=(--transport sse "${FLAGWIRE_STREAM[@]}")
  fi
}
# The stream cap flagwire derived from its open-file limit (it logs it at start).
MAX_STREAMS=$(sed -n 's/.*"max_streams":\([0-9][0-9]*\).*/\1/p' "$WORK/flagwire.err" | head -n 1)
[[ $MAX_STREAMS =~ ^[0-9]+$ ]] || fail "flagwire did not log its stream cap"
# One stream of a flagwire client proves the stream answers before anything is measured.
curl -sS -N --max-time 2 "http://127.0.0.1:$FLAGWIRE_PORT/v1/stream?key=$CLIENT_KEY" \
  >"$WORK/probe.txt" 2>/dev/null || true
grep -q '^event: snapshot$' "$WORK/probe.txt" ||
  fail "GET /v1/stream did not answer a snapshot: $(head -c 300 "$WORK/probe.txt")"
# One socket, through the generator itself, proves /v1/ws: its handshake, subscribe, snapshot
# and one change.
if [[ " $TRANSPORTS " == *" ws "* ]]; then
  flagwire_target ws
  if ! timeout 30 "$LOADGEN" --server flagwire --port "$FLAGWIRE_PORT" "${TARGET[@]}" \
    --trigger "$TOGGLE_PATH" --trigger-token "$TOKEN" --streams 1 --toggles 1 --pause-ms 0 \
    --timeout-ms 5000 --connect-deadline-s 5 --source-base 250 \
    >"$WORK/probe-ws.txt" 2>&1 ||
    ! grep -q '^result .* established=1 .* missed=0 ' "$WORK/probe-ws.txt"; then
    fail "GET /v1/ws did not hold a socket that received a change (TRANSPORTS=sse runs the" \
      "SSE lines alone): $(tail -c 600 "$WORK/probe-ws.txt")"
  fi
fi
stop_flagwire

# --- nginx + nchan ----------------------------------------------------------------------
# Everything nginx writes lives in $WORK/nginx, so it runs the same as root or not. As root,
# nginx would hand its workers to 'nobody'; naming the invoking user keeps $WORK theirs.
write_nginx_conf() {
  local port=$1 prefix=$WORK/nginx user_line='' temp_paths='' m v nofile
  if [ "$(id -u)" -eq 0 ]; then
    user_line="user $(id -un) $(id -gn);"
  fi
  v=$("$NGINX" -V 2>&1)
  for m in proxy fastcgi uwsgi scgi; do
    if [[ $v != *"--without-http_${m}_module"* ]]; then
      temp_paths+="    ${m}_temp_path $prefix/${m}_temp;\\n"
    fi
  done
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1000000
  sed -e "s|@USER_LINE@|$user_line|" -e "s|@NOFILE@|$nofile|g" -e "s|@PREFIX@|$prefix|g" \
    -e "s|@TEMP_PATHS@|$temp_paths|" -e "s|@PORT@|$port|" -e "s|@NCHAN_MODULE@|$NCHAN_MODULE|" \
    "$NCHAN_CONF_IN" >"$prefix/nginx.conf"
}

# start_nginx: on NGINX_PORT, or on a free port found here the first time.
start_nginx() {
  local attempt port i
  mkdir -p "$WORK/nginx"
  for ((attempt = 0; attempt < 20; attempt++)); do
    port=${NGINX_PORT:-$((20000 + RANDOM % 12000))}
    if [ -z "${NGINX_PORT:-}" ] && ss -Htan "sport = :$port" 2>/dev/null | grep -q .; then
      continue
    fi
    write_nginx_conf "$port"
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
      >"$WORK/nginx/stdout" 2>"$WORK/nginx/stderr" &
    NGINX_PID=$!
    for ((i = 0; i < 100; i++)); do
      # The publisher's channel status answers once nginx is up (404: no such channel yet).
      if curl -sS -o /dev/null "http://127.0.0.1:$port/pub?id=probe" 2>/dev/null; then
        NGINX_PORT=$port
        return 0
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop_pid "$NGINX_PID" QUIT
    NGINX_PID=
  done
  fail "nginx did not start: $(cat "$WORK/nginx/stderr" "$WORK/nginx/error.log" 2>/dev/null)"
}

stop_nginx() {
  stop_pid "$NGINX_PID" QUIT
  NGINX_PID=
}

# nginx's master and its workers, comma-separated: their memory is the server's.
nginx_pids() {
  local children
  children=$(pgrep -P "$NGINX_PID" | paste -sd, -)
  echo "$NGINX_PID${children:+,$children}"
}

# --- measuring --------------------------------------------------------------------------
RUN_NO=0

# run_loadgen OUTFILE ARGS...: one generator run; its "result" line goes to OUTFILE. Each run
# connects from other loopback addresses than the last, so ports in TIME_WAIT never matter.
run_loadgen() {
  local out=$1 rc=0
  shift
  RUN_NO=$((RUN_NO + 1))
  timeout 900 "$LOADGEN" --source-base $((2 + (RUN_NO * 4) % 240)) --toggles "$TOGGLES" \
    --pause-ms "$PAUSE_MS" --timeout-ms "$TIMEOUT_MS" "$@" >"$out" 2>"$out.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "loadgen failed ($rc): $(tail -n 5 "$out.err")"
  grep -q '^result ' "$out" || fail "loadgen printed no result: $(tail -n 5 "$out.err")"
}

# One line of the table: a fresh server, N streams, TOGGLES changes.
measure_flagwire() { # measure_flagwire N ROUND LINE TRANSPORT [--contexts]
  local n=$1 round=$2 line=$3 out=$WORK/run-$2-$1-$3.txt
  flagwire_target "$4"
  shift 4
  start_flagwire 0
  run_loadgen "$out" --server flagwire --port "$FLAGWIRE_PORT" "${TARGET[@]}" "$@" \
    --trigger "$TOGGLE_PATH" --trigger-token "$TOKEN" --streams "$n" --pids "$FLAGWIRE_PID"
  note_commits "$out"
  stop_flagwire
  record "$round" "$n" "$line" "$out"
}

# note_commits OUTFILE: adds to the line's result how many commits the server made and how
# many of them took over 10 ms (its flagwire_write_commit_seconds histogram), since with
# DURABILITY=full every change waits for the disk's flush before any stream is sent it.
note_commits() {
  local metrics=$WORK/metrics.txt count fast
  curl -sS --max-time 10 -H "$AUTH" -o "$metrics" "http://127.0.0.1:$FLAGWIRE_PORT/metrics" ||
    fail "GET /metrics failed"
  count=$(sed -n 's/^flagwire_write_commit_seconds_count \([0-9][0-9]*\)$/\1/p' "$metrics")
  fast=$(sed -n 's/^flagwire_write_commit_seconds_bucket{le="0.01"} \([0-9][0-9]*\)$/\1/p' \
    "$metrics")
  [[ $count =~ ^[0-9]+$ && $fast =~ ^[0-9]+$ ]] || fail "/metrics has no commit histogram"
  sed -i "s/^result .*/& commits=$count commits_over_10ms=$((count - fast))/" "$1"
}

# nchan's subscriber location is /sub for SSE and /ws for WebSocket, on the same channels.
measure_nchan() { # measure_nchan N ROUND TRANSPORT
  local n=$1 round=$2 line=nchan location=/sub out channel=bench-$RUN_NO
  if [ "$3" = ws ]; then
    line=nchan-ws
    location=/ws
  fi
  out=$WORK/run-$round-$n-$line.txt
  start_nginx
  run_loadgen "$out" --server nchan --transport "$3" --port "$NGINX_PORT" \
    --stream "$location?id=$channel" --trigger "/pub?id=$channel" --streams "$n" \
    --pids "$(nginx_pids)"
  stop_nginx
  record "$round" "$n" "$line" "$out"
}

# record ROUND N LINE FILE: prints the run and appends it to the results.
record() {
  local result
  result=$(sed -n 's/^result //p' "$4")
  echo "$1 $2 $3 $result" >>"$WORK/results"
  if [ -n "$RESULTS_DIR" ]; then
    mkdir -p "$RESULTS_DIR"
    cp "$4" "$4.err" "$RESULTS_DIR/"
  fi
  printf '%-5s %6s  %-11s  %s\n' "$1" "$2" "$3" "$(summary_of "$result")"
}

# field NAME: the value of NAME=... on each line of stdin.
field() {
  awk -v k="$1" '{
    for (i = 1; i <= NF; i++)
      if (index($i, k "=") == 1) { print substr($i, length(k) + 2); next }
  }'
}

summary_of() {
  local r=$1 f v out=
  for f in established connect_per_s rss_per_stream_b p50_ms p99_ms max_ms missed gaps \
    goodbye_overloaded storm_ms storm_p50_ms; do
    v=$(echo "$r" | field "$f")
    [ -n "$v" ] && out+="$f=$v "
  done
  echo "$out"
}

median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
  }'
}

# col N LINE NAME: one figure of every round of a line.
col() {
  awk -v n="$1" -v l="$2" '$2 == n && $3 == l' "$WORK/results" | field "$3"
}

over_budget() {
  if [ $((SECONDS - STARTED)) -ge "$TIME_BUDGET" ]; then
    echo "bench: the time budget of ${TIME_BUDGET}s is spent; no further line is started" >&2
    return 0
  fi
  return 1
}

# --- the runs ---------------------------------------------------------------------------
SIZES=()
for n in $NS; do
  [ "$n" = max ] && n=$((MAX_STREAMS / 100 * 100))
  [ "$n" -le "$MAX_STREAMS" ] ||
    echo "bench: N=$n is past flagwire's stream cap ($MAX_STREAMS); the extra are turned away" >&2
  SIZES+=("$n")
done

echo "flagwire (threads $SERVER_THREADS, stream cap $MAX_STREAMS) against" \
  "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //') + nchan $(dpkg-query -W -f='${Version}' \
    libnginx-mod-nchan 2>/dev/null) (2 workers); $(nproc) cores; N = ${SIZES[*]};" \
  "$TOGGLES changes per line; $ROUNDS rounds; transports: $TRANSPORTS; KEY=$KEY" \
  "DURABILITY=$DURABILITY"
printf '\n%-5s %6s  %-11s  %s\n' round N line figures
: >"$WORK/results"
budget_spent=0
for ((round = 1; round <= ROUNDS && !budget_spent; round++)); do
  for n in "${SIZES[@]}"; do
    if over_budget; then
      budget_spent=1
      break
    fi
    for t in $TRANSPORTS; do
      if [ "$t" = sse ]; then
        measure_flagwire "$n" "$round" flagwire sse
        measure_nchan "$n" "$round" sse
        if [ "$CONTEXTS" -ne 0 ]; then
          measure_flagwire "$n" "$round" contexts sse --contexts
        fi
      else
        measure_flagwire "$n" "$round" flagwire-ws ws
        measure_nchan "$n" "$round" ws
        if [ "$WS_CONTEXTS" -ne 0 ]; then
          measure_flagwire "$n" "$round" contexts-ws ws --contexts
        fi
      fi
    done
  done
done

# The storm: the generator stops flagwire with SIGTERM once its streams are up; as soon as
# flagwire has exited, it is started again on the same port and data directory.
storm_round() { # storm_round ROUND TRANSPORT
  local round=$1 line=storm out port rc=0
  [ "$2" = ws ] && line=storm-ws
  out=$WORK/run-$round-$line.txt
  flagwire_target "$2"
  start_flagwire 0
  port=$FLAGWIRE_PORT
  RUN_NO=$((RUN_NO + 1))
  timeout 300 "$LOADGEN" --mode storm --source-base $((2 + (RUN_NO * 4) % 240)) \
    --toggles "$STORM_TOGGLES" --pause-ms "$PAUSE_MS" --timeout-ms "$TIMEOUT_MS" \
    --server flagwire --port "$port" "${TARGET[@]}" --trigger "$TOGGLE_PATH" \
    --trigger-token "$TOKEN" --streams "$STORM_STREAMS" --pids "$FLAGWIRE_PID" \
    >"$out" 2>"$out.err" &
  LOADGEN_PID=$!
  # Whichever ends first: flagwire (the storm has begun) or the generator (it failed).
  wait -n "$FLAGWIRE_PID" "$LOADGEN_PID" || true
  if kill -0 "$FLAGWIRE_PID" 2>/dev/null; then
    wait "$LOADGEN_PID" || rc=$?
    LOADGEN_PID=
    fail "loadgen ended before the storm ($rc): $(tail -n 5 "$out.err")"
  fi
  wait "$FLAGWIRE_PID" 2>/dev/null || true
  start_flagwire "$port"
  wait "$LOADGEN_PID" || rc=$?
  LOADGEN_PID=
  [ "$rc" -eq 0 ] || fail "loadgen failed in the storm ($rc): $(tail -n 5 "$out.err")"
  stop_flagwire
  record "$round" "$STORM_STREAMS" "$line" "$out"
}

if [ "$STORM_STREAMS" -gt 0 ]; then
  for ((round = 1; round <= ROUNDS && !budget_spent; round++)); do
    for t in $TRANSPORTS; do
      if over_budget; then
        budget_spent=1
        break
      fi
      storm_round "$round" "$t"
    done
  done
fi

# --- summary ----------------------------------------------------------------------------
# One table per transport; SFX is the suffix of its line names ("" for SSE, -ws).
SFX=
# ratio FIELD N: the ratio flagwire/nchan of the medians, and the median of the per-round
# ratios (the two lines of a round are seconds apart and share most of the noise).
ratio_of_medians() {
  awk -v a="$(col "$2" "flagwire$SFX" "$1" | median)" \
    -v b="$(col "$2" "nchan$SFX" "$1" | median)" \
    'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }'
}
median_of_ratios() {
  paste -d' ' <(col "$2" "flagwire$SFX" "$1") <(col "$2" "nchan$SFX" "$1") |
    awk 'NF == 2 && $2 > 0 { print $1 / $2 }' | median |
    awk '$1 != "-" { printf "%.2f", $1; next } { print }'
}

# p99_wins N: "k of r": the rounds whose flagwire p99 was at most nchan's.
p99_wins() {
  paste -d' ' <(col "$1" "flagwire$SFX" p99_ms) <(col "$1" "nchan$SFX" p99_ms) |
    awk 'NF == 2 { r++; if ($1 <= $2) k++ } END { printf "%d of %d", k, r }'
}

# fmt FORMAT VALUE: VALUE printed with FORMAT, or "-" when there is none.
fmt() {
  # shellcheck disable=SC2059 # the format is the caller's, on purpose
  if [ "$2" = - ]; then echo -; else printf "$1" "$2"; fi
}

row() { # row LABEL FIELD N FORMAT [ratio]
  printf "%-28s %14s %14s %14s" "$1" "$(fmt "$4" "$(col "$3" "flagwire$SFX" "$2" | median)")" \
    "$(fmt "$4" "$(col "$3" "contexts$SFX" "$2" | median)")" \
    "$(fmt "$4" "$(col "$3" "nchan$SFX" "$2" | median)")"
  if [ "${5-}" = ratio ]; then
    printf ' %10s %10s' "$(ratio_of_medians "$2" "$3")" "$(median_of_ratios "$2" "$3")"
  fi
  printf '\n'
}

# growth N LINE: the median over the rounds of the server's RSS growth, in KiB.
growth() {
  paste -d' ' <(col "$1" "$2" rss_before_kib) <(col "$1" "$2" rss_after_kib) |
    awk 'NF == 2 { print $2 - $1 }' | median
}

# marginal_row N PREVIOUS: RSS per stream between two stream counts, which leaves out what a
# server spends once (e.g. memory it touches for its first streams only).
marginal_row() {
  local line out=() a b
  for line in "flagwire$SFX" "contexts$SFX" "nchan$SFX"; do
    a=$(growth "$2" "$line")
    b=$(growth "$1" "$line")
    out+=("$(awk -v a="$a" -v b="$b" -v n="$1" -v p="$2" 'BEGIN {
      if (a == "-" || b == "-") print "-"; else printf "%.0f", (b - a) * 1024 / (n - p)
    }')")
  done
  printf "%-28s %14s %14s %14s\n" "RSS per stream, $2..$1 (B)" "${out[@]}"
}

total() { # total FIELD: the sum over every run
  field "$1" <"$WORK/results" | awk '{ s += $1 } END { print s + 0 }'
}

echo
for t in $TRANSPORTS; do
  SFX=
  name="Server-Sent Events"
  if [ "$t" = ws ]; then
    SFX=-ws
    name=WebSocket
  fi
  previous=
  for n in "${SIZES[@]}"; do
    [ -n "$(col "$n" "flagwire$SFX" p99_ms)" ] || continue
    echo "N = $n, $name, medians over $(col "$n" "flagwire$SFX" p99_ms | wc -l) rounds"
    printf "%-28s %14s %14s %14s %10s %10s\n" "" flagwire "flagwire ctx" nchan "f/n (med)" \
      "f/n (rnd)"
    row "connect (streams/s)" connect_per_s "$n" '%.0f' ratio
    row "server RSS after (KiB)" rss_after_kib "$n" '%.0f'
    row "RSS per idle stream (B)" rss_per_stream_b "$n" '%.0f' ratio
    row "PSS per idle stream (B)" pss_per_stream_b "$n" '%.0f' ratio
    if [ -n "$previous" ] && [ "$previous" -lt "$n" ]; then marginal_row "$n" "$previous"; fi
    previous=$n
    row "TCP buffers per stream (B)" sock_per_stream_b "$n" '%.0f'
    row "latency p50 (ms)" p50_ms "$n" '%.2f' ratio
    row "latency p99 (ms)" p99_ms "$n" '%.2f' ratio
    row "latency max (ms)" max_ms "$n" '%.2f' ratio
    row "trigger answered, p50 (ms)" answer_p50_ms "$n" '%.2f'
    row "first stream, p50 (ms)" first_p50_ms "$n" '%.2f'
    row "last stream, p50 (ms)" last_p50_ms "$n" '%.2f' ratio
    row "commits over 10 ms" commits_over_10ms "$n" '%.0f'
    echo "p99: flagwire at most nchan's in $(p99_wins "$n") rounds"
    echo
  done
done

storm_median() { # storm_median LINE FIELD: its median over the storm rounds
  awk -v l="$1" '$3 == l' "$WORK/results" | field "$2" | median
}
for line in storm storm-ws; do
  storms=$(awk -v l="$line" '$3 == l' "$WORK/results" | field storm_ms | paste -sd' ' -)
  [ -n "$storms" ] || continue
  name="Server-Sent Events"
  [ "$line" = storm-ws ] && name=WebSocket
  echo "reconnect storm, $STORM_STREAMS flagwire streams ($name), medians over the rounds," \
    "in ms after SIGTERM: every stream back $(storm_median "$line" storm_ms) (rounds:" \
    "$storms); half back $(storm_median "$line" storm_p50_ms), 99 % back" \
    "$(storm_median "$line" storm_p99_ms); goodbyes received from" \
    "$(storm_median "$line" storm_first_goodbye_ms) to $(storm_median "$line" storm_last_goodbye_ms)"
done

# A run where a stream did not come up, or missed or lost a change, is not a measurement;
# nor is one where a WebSocket server broke the protocol or answered an error.
missed=$(($(total missed) + $(total gaps) + $(total id_mismatches)))
failed=$(total failed)
broken=$(($(total protocol_errors) + $(total error_messages)))
unresumed=$(awk '$3 ~ /^storm/' "$WORK/results" |
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         s += v["storm_expected"] - v["storm_resumed"] } END { print s + 0 }')
echo "missed changes: $missed (changes received: $(total receipts)); streams that did not" \
  "come up: $failed; storm streams not resumed: $unresumed;" \
  "goodbyes (overloaded): $(total goodbye_overloaded); snapshots on resume: $(total resyncs);" \
  "WebSocket protocol errors and error messages: $broken"
echo "Floors: p99 no worse than nchan's at every N; at most 1 KB of server RSS per idle" \
  "stream; zero missed events; storm resumed within 3 s. Goal: p99 at most half of nchan's."
if [ "$missed" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$unresumed" -ne 0 ] || [ "$broken" -ne 0 ]; then
  fail "missed changes, streams that never came up, streams not resumed, or WebSocket" \
    "errors (see above)"
fi
