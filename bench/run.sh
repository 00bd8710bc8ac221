#!/usr/bin/env bash
# usher's load benchmark (bench/README.md): builds the release binaries, starts
# `usher serve` from a temporary directory on a free loopback port with a fresh store,
# measures its idle RSS, creates a user, runs the scenarios with usher-bench and prints
# a Markdown report with the exact commands; then stops the server and drops the store.
#
# Usage: bench/run.sh [sqlite|postgres] [scenario...]
#   scenarios: hash password refresh bearer bearer-under-password-load check introspect
#              client-credentials (default: hash password refresh bearer
#              bearer-under-password-load)
# Environment:
#   USHER_BENCH_DURATION     measured seconds per scenario (default 10)
#   USHER_BENCH_WARMUP       warm-up seconds per scenario (default 2)
#   USHER_BENCH_CONNECTIONS  connections per scenario (default 64)
#   USHER_BENCH_THREADS      load-generator runtime threads (default 1)
#   USHER_BENCH_DATABASE_URL PostgreSQL server for `postgres` (a fresh database is made)
#   USHER_BENCH_REDIS_URL    Redis for `postgres` (keys under a unique prefix)
#   USHER_BENCH_NO_BUILD=1   use the binaries already built
#   other USHER_* keys       passed to the server (e.g. USHER_HASH_POOL_SIZE); the
#                            argon2 keys also set the cost of the hash scenario
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

all_scenarios=(hash password refresh bearer bearer-under-password-load check introspect client-credentials)
default_scenarios=(hash password refresh bearer bearer-under-password-load)

backend=sqlite
if [[ $# -gt 0 && ($1 == sqlite || $1 == postgres) ]]; then
    backend=$1
    shift
fi
scenarios=("$@")
if [[ ${#scenarios[@]} -eq 0 ]]; then
    scenarios=("${default_scenarios[@]}")
fi
for s in "${scenarios[@]}"; do
    if [[ " ${all_scenarios[*]} " != *" $s "* ]]; then
        echo "usage: bench/run.sh [sqlite|postgres] [scenario...]" >&2
        echo "unknown scenario '$s'; known: ${all_scenarios[*]}" >&2
        exit 2
    fi
done
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }

duration="${USHER_BENCH_DURATION:-10}"
warmup="${USHER_BENCH_WARMUP:-2}"
connections="${USHER_BENCH_CONNECTIONS:-64}"
threads="${USHER_BENCH_THREADS:-1}"
pg_url="${USHER_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${USHER_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
no_build="${USHER_BENCH_NO_BUILD:-}"
# The server warns about USHER_ variables it does not know: keep ours (and the test
# suite's) out of its environment.
for name in $(compgen -e); do
    case $name in USHER_BENCH_* | USHER_TEST_*) unset "$name" ;; esac
done

log() { printf '== %s\n' "$*" >&2; }
mib() { awk '{ printf "%.1f", $1 / 1024 }' <<<"$1"; }
rss_verdict() { if (($1 <= 30 * 1024 && $2 <= 30 * 1024)); then echo met; else echo missed; fi; }
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
if [[ -z $no_build ]]; then
    log "building release binaries (cargo build --release -p usher -p usher-bench)"
    cargo build --release -p usher -p usher-bench >&2
fi
usher="$target_dir/release/usher"
bench="$target_dir/release/usher-bench"
[[ -x $usher && -x $bench ]] || { echo "missing $usher or $bench" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/usher-bench.XXXXXX")"
server_pid=""
pg_db=""
redis_prefix=""
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $pg_db ]]; then
        psql "$pg_url" -qX -v ON_ERROR_STOP=1 -c "drop database if exists \"$pg_db\" with (force)" >/dev/null ||
            echo "warning: could not drop database $pg_db" >&2
    fi
    if [[ -n $redis_prefix ]] && command -v redis-cli >/dev/null; then
        redis-cli -u "$redis_url" --scan --pattern "$redis_prefix:*" 2>/dev/null |
            xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$("$bench" free-port)"
url="http://127.0.0.1:$port"
server_env=(USHER_BIND="127.0.0.1:$port" USHER_ISSUER="$url" USHER_KEYS_DIR="$tmp/jwks" USHER_LOG=warn)
case $backend in
sqlite)
    server_env+=(USHER_DATABASE_URL="sqlite://$tmp/usher.db")
    unset USHER_REDIS_URL USHER_REDIS_URL_FILE USHER_DATABASE_URL_FILE
    ;;
postgres)
    command -v psql >/dev/null || { echo "postgres backend needs psql" >&2; exit 1; }
    pg_db="usher_bench_$$_$RANDOM"
    log "creating database $pg_db"
    psql "$pg_url" -qX -v ON_ERROR_STOP=1 -c "create database \"$pg_db\"" >/dev/null
    base="${pg_url%%\?*}"
    query=""
    [[ $pg_url == *\?* ]] && query="?${pg_url#*\?}"
    redis_prefix="usher-bench-$$-$RANDOM"
    server_env+=(USHER_DATABASE_URL="${base%/*}/$pg_db$query" USHER_REDIS_URL="$redis_url"
        USHER_REDIS_PREFIX="$redis_prefix")
    unset USHER_REDIS_URL_FILE USHER_DATABASE_URL_FILE
    ;;
esac
passed_through="$(compgen -e | grep '^USHER_' | grep -v -E '^USHER_(BIND|ISSUER|KEYS_DIR|LOG|DATABASE_URL|REDIS_URL|REDIS_PREFIX)$' | tr '\n' ' ' || true)"

user=bench
password="bench-password-$RANDOM$RANDOM"
needs_client=""
if wants introspect || wants client-credentials || wants check; then
    needs_client=1
    admin="bench-admin"
    admin_password="bench-admin-$RANDOM$RANDOM"
    log "creating superuser $admin (usher create-superuser)"
    (cd "$tmp" && env "${server_env[@]}" "$usher" create-superuser --login "$admin" --password-stdin \
        <<<"$admin_password") >&2
fi

log "starting usher on $url ($backend)"
(cd "$tmp" && exec env "${server_env[@]}" "$usher" serve) >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$url/healthz" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "usher exited" >&2; exit 1; }
    sleep 0.2
done
curl -fsS -o /dev/null "$url/healthz" || { cat "$tmp/server.log" >&2; exit 1; }
sleep 1
rss_start="$(proc_kib "$server_pid" VmRSS)"

log "creating user $user"
status="$(curl -sS -o "$tmp/signup.json" -w '%{http_code}' -H 'content-type: application/json' \
    -d "{\"login\":\"$user\",\"password\":\"$password\"}" "$url/api/v1/users")"
[[ $status == 201 ]] || { echo "sign-up answered $status: $(cat "$tmp/signup.json")" >&2; exit 1; }
user_id="$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$tmp/signup.json")"

# Idle means nothing happened for a while: the hashing threads free their argon2
# buffers 5 s after their last hash (IDLE_RELEASE in src/service/passwords.rs), so wait 7 s.
log "warm-up: 1 s of bearer GETs on 4 connections, then 7 s idle"
"$bench" bearer --url "$url" --connections 4 --duration 1 --warmup 0 \
    --user "$user" --password "$password" >/dev/null
sleep 7
rss_warm="$(proc_kib "$server_pid" VmRSS)"

client_args=()
if [[ -n $needs_client ]]; then
    json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
    admin_token="$(curl -sS "$url/oauth2/token" -d grant_type=password -d client_id=cinema-web \
        --data-urlencode "username=$admin" --data-urlencode "password=$admin_password" | json_field access_token)"
    client_secret="$(curl -sS -H "authorization: Bearer $admin_token" -H 'content-type: application/json' \
        -d '{"client_id":"bench-service","client_name":"usher-bench","token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"]}' \
        "$url/api/v1/clients" | json_field client_secret || true)"
    if [[ -z $client_secret ]]; then
        echo "warning: could not register a confidential client (POST /api/v1/clients);" \
            "introspect and client-credentials will show the errors" >&2
        client_secret=unregistered
    fi
    client_args=(--client-id bench-service --client-secret "$client_secret")
    # Best effort, for a realistic check: give the user the seeded `subscriber` role.
    if command -v jq >/dev/null && [[ -n $user_id ]]; then
        role_id="$(curl -sS -H "authorization: Bearer $admin_token" "$url/api/v1/roles" |
            jq -r '(.items? // .) | .[]? | select(.name == "subscriber") | .id' 2>/dev/null || true)"
        if [[ -n $role_id ]]; then
            curl -sS -o /dev/null -X PUT -H "authorization: Bearer $admin_token" \
                "$url/api/v1/users/$user_id/roles/$role_id" || true
        fi
    fi
fi

cost_args=()
[[ -n ${USHER_ARGON2_MEMORY_KIB:-} ]] && cost_args+=(--memory-kib "$USHER_ARGON2_MEMORY_KIB")
[[ -n ${USHER_ARGON2_ITERATIONS:-} ]] && cost_args+=(--iterations "$USHER_ARGON2_ITERATIONS")
[[ -n ${USHER_ARGON2_PARALLELISM:-} ]] && cost_args+=(--parallelism "$USHER_ARGON2_PARALLELISM")
hash_line=""
ceiling_args=()
commands=()
quote() { local out; printf -v out '%q ' "$@"; printf '%s' "${out% }"; }
if wants hash || wants password || wants bearer-under-password-load; then
    log "hash"
    hash_cmd=("$bench" hash "${cost_args[@]}" --json)
    hash_json="$("${hash_cmd[@]}" 2>"$tmp/hash.txt")"
    hash_line="$(cat "$tmp/hash.txt")"
    echo "$hash_line" >&2
    ceiling="$(sed -n 's/.*"ceiling_per_s":\([0-9.e+-]*\).*/\1/p' <<<"$hash_json")"
    [[ -n $ceiling ]] && ceiling_args=(--hash-ceiling "$(printf '%.1f' "$ceiling")")
    commands+=("$(quote "${hash_cmd[@]}")")
fi

rows=()
for s in "${scenarios[@]}"; do
    [[ $s == hash ]] && continue
    cmd=("$bench" "$s" --url "$url" --connections "$connections" --duration "$duration"
        --warmup "$warmup" --threads "$threads" --user "$user" --password "$password"
        --label "$backend" --markdown)
    case $s in
    password | bearer-under-password-load) cmd+=("${ceiling_args[@]}") ;;
    introspect | client-credentials) cmd+=("${client_args[@]}") ;;
    esac
    log "$s"
    if out="$("${cmd[@]}")"; then
        mapfile -t lines <<<"$out"
        rows+=("${lines[@]}")
    else
        rows+=("| $s | $backend | $connections | failed (see the log above) | | | | | | | |")
    fi
    shown=("${cmd[@]}")
    for i in "${!shown[@]}"; do
        [[ ${shown[$i]} == --client-secret ]] && shown[i + 1]=CLIENT_SECRET_PLACEHOLDER
    done
    shown_text="$(quote "${shown[@]}")"
    commands+=("${shown_text//CLIENT_SECRET_PLACEHOLDER/\"\$CLIENT_SECRET\"}")
    sleep 2
done
sleep 5
rss_end="$(proc_kib "$server_pid" VmRSS)"
rss_peak="$(proc_kib "$server_pid" VmHWM)"
server_warn="$(grep -c -E '\bWARN\b' "$tmp/server.log" || true)"
server_error="$(grep -c -E '\bERROR\b|panicked' "$tmp/server.log" || true)"

cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
cat <<EOF

## usher benchmark: $backend, $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)

- Machine: ${cpu:-unknown CPU}, \`nproc\` = $(nproc). Server and load generator share the same cores (no pinning): every core the generator uses is taken from usher.
- Server: \`$(quote env "${server_env[@]}" "$usher" serve)\` from a temporary directory${passed_through:+; also from the environment: $passed_through}
- Each scenario: $connections connections, ${duration} s measured after ${warmup} s of warm-up, generator runtime on $threads thread(s); latency of 2xx answers only, errors listed by status.
${hash_line:+- $hash_line
}- Idle RSS of usher: $(mib "$rss_start") MiB after start, $(mib "$rss_warm") MiB idle after a warm-up (target ≤ 30 MiB: $(rss_verdict "$rss_start" "$rss_warm")); idle after the runs $(mib "$rss_end") MiB, peak (VmHWM) $(mib "$rss_peak") MiB.
- Server log (USHER_LOG=warn): $server_warn WARN lines (503s are logged there), $server_error ERROR or panic lines.

| scenario | backend | conns | req/s | errors | p50 ms | p90 ms | p99 ms | max ms | target | verdict |
| --- | --- | --: | --: | --- | --: | --: | --: | --: | --- | --- |
EOF
printf '%s\n' "${rows[@]}"
echo
echo "Commands (usher on $url${client_args[*]:+; \$CLIENT_SECRET is the secret returned when bench-service was registered}):"
echo
for c in "${commands[@]}"; do printf -- '- %s%s%s\n' '`' "$c" '`'; done
if [[ $server_warn != 0 || $server_error != 0 ]]; then
    echo
    echo "First WARN and ERROR lines of the server log:"
    echo
    grep -E '\b(WARN|ERROR)\b|panicked' "$tmp/server.log" | head -5 | sed 's/^/    /'
fi
