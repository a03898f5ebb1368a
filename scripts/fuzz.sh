#!/usr/bin/env bash
# Builds lurk's libFuzzer targets (tests/fuzz) with clang, ASan and UBSan,
# and lurk's own code coverage-instrumented, then runs each for FUZZ_SECONDS
# (default 60), FUZZ_JOBS (default 2) at a time.
#
# Each target starts from its checked-in seeds (tests/fuzz/corpus/<name>,
# only read) plus what earlier runs found (build-fuzz/fuzz-work/<name>/corpus,
# where new inputs go). A crash, leak, timeout, out-of-memory or sanitizer
# report leaves its input in build-fuzz/fuzz-work/<name>/ and makes the
# script exit non-zero; the log is fuzz-work/<name>/log. Replay one with
# build-fuzz/tests/fuzz/fuzz_<name> <file>.
#
#   FUZZ_SECONDS=600 scripts/fuzz.sh            all targets, 10 minutes each
#   scripts/fuzz.sh h1 json                     only these
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$top/build-fuzz}
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
work=$build/fuzz-work

all=(url h1 ws_frame pmd inflate json tls_records tls_open exchange)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# Inputs past these sizes add run time, not coverage: a URL, a response or a
# run of frames of a few KiB, a compressed body that may inflate to MiBs.
max_len() {
    case $1 in
        url) echo 2048 ;;
        tls_records) echo 512 ;;
        json) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

log() { printf 'fuzz: %s\n' "$*" >&2; }

command -v clang >/dev/null || { log "clang is missing (scripts/install-deps.sh installs it)"; exit 1; }

# Coverage and sanitizers on lurk's code too (LURK_SANITIZE), not only on the
# targets; CC applies when the build directory is first configured.
CC=clang cmake -S "$top" -B "$build" -DLURK_FUZZ=ON -DLURK_UML_TESTS=OFF \
    -DLURK_SANITIZE=fuzzer-no-link,address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}" >/dev/null

run_one() {
    local t=$1 dir=$work/$1
    local bin=$build/tests/fuzz/fuzz_$t dict=()

    [ -f "$top/tests/fuzz/$t.dict" ] && dict=(-dict="$top/tests/fuzz/$t.dict")

    mkdir -p "$dir/corpus"
    rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*
    # The first directory receives new inputs; the seeds are only read.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=25 \
               -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$dir/" "${dict[@]}" \
               "$dir/corpus" "$top/tests/fuzz/corpus/$t" >"$dir/log" 2>&1
}

# Runs the targets FUZZ_JOBS at a time; each one's status goes to its dir.
running=0
for t in "${targets[@]}"; do
    [ -x "$build/tests/fuzz/fuzz_$t" ] || { log "unknown target $t"; exit 1; }
    log "running $t for ${secs}s"
    ( rc=0; run_one "$t" || rc=$?; echo "$rc" >"$work/$t/status" ) &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
printf '%-12s %8s %12s %8s  %s\n' target seconds execs corpus result
for t in "${targets[@]}"; do
    dir=$work/$t
    rc=$(cat "$dir/status" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$dir/log" | tail -1)
    found=$(ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2>/dev/null | head -1 || true)
    result=ok
    if [ "$rc" != 0 ] || [ -n "$found" ] || grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$dir/log"; then
        result="FINDING (exit $rc) ${found:-see $dir/log}"
        failed=1
    fi
    printf '%-12s %8s %12s %8s  %s\n' "$t" "${took:-?}" "${execs:-?}" \
        "$(ls "$dir/corpus" | wc -l)" "$result"
done
exit $failed
