#!/usr/bin/env bash
# HTTP core benchmark: wrk against flagwire and, in the same run, against nginx answering the
# same bodies with `return 200`. Rounds alternate flagwire and nginx so that the noise of a
# shared machine falls on both; the summary gives medians and the ratio flagwire/nginx.
#
# Environment (all optional):
#   ROUNDS=5          alternating rounds
#   DURATION=10s      length of each measured wrk run
#   WARMUP=3s         length of the warm-up run against each server and route
#   THREADS=2         wrk threads
#   CONNECTIONS=200   wrk connections (keep-alive)
#   SERVER_THREADS=2  flagwire --threads and nginx worker_processes (kept equal)
#   RESULTS_DIR=      when set, every raw wrk output is kept there
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-200}
SERVER_THREADS=${SERVER_THREADS:-2}
RESULTS_DIR=${RESULTS_DIR:-}

for var in ROUNDS THREADS CONNECTIONS SERVER_THREADS; do
  if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench: $var must be a positive integer, not '${!var}'" >&2
    exit 2
  fi
done

source scripts/deps.sh
ensure_packages "${BUILD_PACKAGES[@]}" wrk nginx-light

NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || NGINX=/usr/sbin/nginx

cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLAGWIRE_TESTS=OFF >/dev/null
cmake --build build-release >/dev/null
FLAGWIRE=$PWD/build-release/flagwire

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flagwire-bench-http.XXXXXX")
FLAGWIRE_PID=
NGINX_PID=

# Stops one server: SIGTERM (nginx: SIGQUIT, graceful), then SIGKILL after about 5 s.
stop_pid() {
  local pid=$1 sig=$2 i
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
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
"$FLAGWIRE" serve --host 127.0.0.1 --port 0 --threads "$SERVER_THREADS" --data "$WORK/data" \
  --log-level warn >"$WORK/flagwire.out" 2>"$WORK/flagwire.err" &
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
FLAGWIRE_URL=http://127.0.0.1:$FLAGWIRE_PORT

# nginx answers with the very bytes flagwire sends, read from flagwire itself.
HEALTHZ_BODY=$(curl -fsS "$FLAGWIRE_URL/healthz")
VERSION_BODY=$(curl -fsS "$FLAGWIRE_URL/version")
case "$HEALTHZ_BODY$VERSION_BODY" in
  *"'"* | *'\'* | *'$'*) fail "a body holds a character the nginx config would need escaped" ;;
esac

# --- nginx ------------------------------------------------------------------------------
# Everything nginx writes lives in $WORK, so it runs the same as root or not. As root, nginx
# would hand its workers to 'nobody'; naming the invoking user keeps them able to use $WORK.
write_nginx_conf() {
  local port=$1 user_line= m temp_paths=""
  if [ "$(id -u)" -eq 0 ]; then
    user_line="user $(id -un) $(id -gn);"
  fi
  local v
  v=$("$NGINX" -V 2>&1)
  for m in proxy fastcgi uwsgi scgi; do
    if [[ $v != *"--without-http_${m}_module"* ]]; then
      temp_paths+="    ${m}_temp_path $WORK/nginx/${m}_temp;"$'\n'
    fi
  done
  cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes $SERVER_THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $WORK/nginx/client_body_temp;
$temp_paths
    server {
        listen 127.0.0.1:$port reuseport;
        location = /healthz {
            default_type application/json;
            return 200 '$HEALTHZ_BODY';
        }
        location = /version {
            default_type application/json;
            return 200 '$VERSION_BODY';
        }
    }
}
EOF
}

mkdir -p "$WORK/nginx"
NGINX_PORT=
for ((attempt = 0; attempt < 20; attempt++)); do
  port=$((20000 + RANDOM % 40000))
  if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
    continue
  fi
  write_nginx_conf "$port"
  "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$WORK/nginx/stdout" 2>"$WORK/nginx/stderr" &
  NGINX_PID=$!
  for ((i = 0; i < 50; i++)); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      NGINX_PORT=$port
      break
    fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$NGINX_PORT" ] && break
  stop_pid "$NGINX_PID" QUIT
  NGINX_PID=
done
[ -n "$NGINX_PORT" ] || fail "nginx did not start: $(cat "$WORK/nginx/stderr" "$WORK/nginx/error.log" 2>/dev/null)"
NGINX_URL=http://127.0.0.1:$NGINX_PORT

for route in healthz version; do
  a=$(curl -fsS "$FLAGWIRE_URL/$route")
  b=$(curl -fsS "$NGINX_URL/$route")
  [ "$a" = "$b" ] || fail "/$route bodies differ: flagwire '$a', nginx '$b'"
  ct=$(curl -fsS -o /dev/null -w '%{content_type}' "$NGINX_URL/$route")
  [ "$ct" = application/json ] || fail "nginx /$route Content-Type is '$ct'"
done

# --- measuring --------------------------------------------------------------------------
# run_wrk DURATION URL OUTFILE: one wrk run, keep-alive, latency distribution.
run_wrk() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --latency "$2" >"$3" 2>&1 ||
    fail "wrk failed against $2: $(cat "$3")"
}

# parse_wrk FILE: prints "req_per_s p99_ms errors" from one wrk output.
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

echo "flagwire $FLAGWIRE_URL (threads $SERVER_THREADS), nginx $NGINX_URL (workers $SERVER_THREADS)"
echo "$($NGINX -v 2>&1 | sed 's/^nginx version: //'), $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)," \
  "$(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds"

for route in healthz version; do
  run_wrk "$WARMUP" "$FLAGWIRE_URL/$route" "$WORK/warmup.txt"
  run_wrk "$WARMUP" "$NGINX_URL/$route" "$WORK/warmup.txt"
done

printf '\n%-5s  %-8s  %-8s  %10s  %8s  %6s\n' round route server "req/s" "p99 ms" errors
: >"$WORK/results"
for ((round = 1; round <= ROUNDS; round++)); do
  for route in healthz version; do
    for server in flagwire nginx; do
      if [ "$server" = flagwire ]; then url=$FLAGWIRE_URL/$route; else url=$NGINX_URL/$route; fi
      out=$WORK/wrk-$round-$route-$server.txt
      run_wrk "$DURATION" "$url" "$out"
      parsed=$(parse_wrk "$out")
      read -r rps p99 errs <<<"$parsed"
      printf '%-5s  %-8s  %-8s  %10s  %8s  %6s\n' "$round" "/$route" "$server" "$rps" "$p99" "$errs"
      echo "$round $route $server $rps $p99 $errs" >>"$WORK/results"
      if [ -n "$RESULTS_DIR" ]; then
        mkdir -p "$RESULTS_DIR"
        cp "$out" "$RESULTS_DIR/"
      fi
    done
  done
done

col() { # col ROUTE SERVER FIELD: one column of the results (4 req/s, 5 p99, 6 errors)
  awk -v r="$1" -v s="$2" -v f="$3" '$2 == r && $3 == s { print $f }' "$WORK/results"
}

echo
echo "medians over $ROUNDS rounds"
printf '%-8s  %14s  %12s  %14s  %12s  %14s  %14s\n' route "flagwire req/s" "flagwire p99" \
  "nginx req/s" "nginx p99" "ratio (median)" "ratio (rounds)"
total_errors=0
for route in healthz version; do
  f_rps=$(col "$route" flagwire 4 | median)
  n_rps=$(col "$route" nginx 4 | median)
  f_p99=$(col "$route" flagwire 5 | median)
  n_p99=$(col "$route" nginx 5 | median)
  ratio=$(awk -v a="$f_rps" -v b="$n_rps" 'BEGIN { printf "%.2f", a / b }')
  # The two runs of a round are adjacent in time, so their ratio shares most of the noise.
  round_ratio=$(paste -d' ' <(col "$route" flagwire 4) <(col "$route" nginx 4) |
    awk '{ print $1 / $2 }' | median | awk '{ printf "%.2f", $1 }')
  errs=$(col "$route" flagwire 6; col "$route" nginx 6)
  total_errors=$((total_errors + $(echo "$errs" | awk '{ s += $1 } END { print s + 0 }')))
  printf '%-8s  %14.0f  %9.2f ms  %14.0f  %9.2f ms  %14s  %14s\n' "/$route" "$f_rps" "$f_p99" \
    "$n_rps" "$n_p99" "$ratio" "$round_ratio"
done
echo "ratio (median): median flagwire req/s / median nginx req/s;" \
  "ratio (rounds): median of the per-round ratios. Floor 0.80, goal 1.00."
if [ "$total_errors" -ne 0 ]; then
  echo "bench: $total_errors error responses or socket errors during the runs" >&2
  exit 1
fi
