#!/usr/bin/env bash
# Runs the whole test suite: an optimised build with debug info (which includes the
# valgrind integration test when valgrind is present), then a Debug build with ASan+UBSan,
# then the JavaScript SDK's tests (clients/js, `npm test`, against the build-test/ gateway),
# then each libFuzzer harness briefly (FUZZ_SECONDS each, default 15) when clang is there.
# Every build uses -Werror. Exits non-zero if any build, test or harness fails.
#
#   tests/run-all.sh            all stages
#   tests/run-all.sh asan       one stage: "main" (build-test/), "asan" (build-asan/),
#                               "js" (clients/js; builds build-test/gateway/wsgate if needed) or
#                               "fuzz" (build-fuzz/; tests/fuzz/run.sh 600 for a long run)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

JOBS=$(nproc 2>/dev/null || echo 2)
CTEST_TIMEOUT=${CTEST_TIMEOUT:-600} # per test, for tests that set no TIMEOUT of their own

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(main asan js fuzz)
for s in "${stages[@]}"; do
  case "$s" in
    main | asan | js | fuzz) ;;
    *) echo "usage: $0 [main] [asan] [js] [fuzz]" >&2; exit 2 ;;
  esac
done

bash "$ROOT/deploy/install-deps.sh"

say() { printf '\n=== %s\n' "$*"; }

results=() total_passed=0 total_failed=0 failed_stages=0

# run_stage NAME DIR ENV... -- CMAKE_ARGS...: configure, build, ctest; records one result.
run_stage() {
  local name=$1 dir=$2 env=() start=$SECONDS rc=0 passed=0 failed=0 line
  shift 2
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  say "$name: configure + build in $dir/ ($*)"
  if ! cmake -S . -B "$dir" -DBUILD_TESTING=ON "$@"; then
    results+=("$name: FAILED (cmake configure)")
    failed_stages=$((failed_stages + 1))
    return
  fi
  if ! cmake --build "$dir" -j"$JOBS"; then
    results+=("$name: FAILED (build)")
    failed_stages=$((failed_stages + 1))
    return
  fi
  say "$name: ctest"
  env "${env[@]}" ctest --test-dir "$dir" --output-on-failure -j2 --no-tests=error \
    --timeout "$CTEST_TIMEOUT" 2>&1 | tee "$dir/ctest.log" || rc=$?
  # ctest's summary line: "100% tests passed, 0 tests failed out of 12"
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$dir/ctest.log" | tail -n 1 || true)
  if [ -n "$line" ]; then
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$(( $(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line") - failed ))
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    results+=("$name: FAILED (ctest exit $rc; $passed passed, $failed failed) in $((SECONDS - start))s")
    failed_stages=$((failed_stages + 1))
  else
    results+=("$name: ok ($passed passed) in $((SECONDS - start))s")
  fi
}

# run_fuzz: every harness of tests/fuzz for FUZZ_SECONDS; one result per harness.
run_fuzz() {
  local start=$SECONDS n log passed=0 failed=0 secs=${FUZZ_SECONDS:-15}
  if ! command -v clang >/dev/null 2>&1; then
    results+=("fuzz: skipped (no clang)")
    return
  fi
  say "fuzz: every harness for ${secs}s (build-fuzz/)"
  for src in tests/fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    n=${n#fuzz_}
    log=build-fuzz/$n.log
    mkdir -p build-fuzz
    if WSGATE_FUZZ_BUILD="$ROOT/build-fuzz" bash tests/fuzz/run.sh "$secs" "$n" >"$log" 2>&1; then
      passed=$((passed + 1))
      printf '  %s: ok (%s)\n' "$n" "$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" || echo '?')"
    else
      failed=$((failed + 1))
      printf '  %s: FAILED (see %s)\n' "$n" "$log"
      tail -n 30 "$log"
    fi
  done
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [ "$failed" -ne 0 ]; then
    results+=("fuzz: FAILED ($passed passed, $failed failed) in $((SECONDS - start))s")
    failed_stages=$((failed_stages + 1))
  else
    results+=("fuzz: ok ($passed harnesses) in $((SECONDS - start))s")
  fi
}

# run_js: npm ci + npm test in clients/js against build-test/'s gateway (built when missing
# or stale: cmake's own dependency check makes that a no-op after the main stage).
run_js() {
  local start=$SECONDS rc=0 passed=0 failed=0 log=$ROOT/build-test/js.log major
  say "js: clients/js (npm ci, npm test)"
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
    results+=("js: FAILED (needs Node.js 20+ and npm; found node major '$major')")
    failed_stages=$((failed_stages + 1))
    return
  fi
  if ! { cmake -S . -B build-test -DBUILD_TESTING=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
         cmake --build build-test -j"$JOBS" --target wsgate; }; then
    results+=("js: FAILED (build of build-test/gateway/wsgate)")
    failed_stages=$((failed_stages + 1))
    return
  fi
  # puppeteer-core downloads nothing itself; the tests use Debian's /usr/bin/chromium.
  (cd clients/js && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund) || rc=$?
  if [ "$rc" -eq 0 ]; then
    (cd clients/js && WSGATE_BIN="$ROOT/build-test/gateway/wsgate" npm test) 2>&1 | tee "$log" || rc=$?
  fi
  passed=$(grep -E '^# pass [0-9]+' "$log" 2>/dev/null | tail -n 1 | awk '{print $3}' || true)
  failed=$(grep -E '^# fail [0-9]+' "$log" 2>/dev/null | tail -n 1 | awk '{print $3}' || true)
  passed=${passed:-0} failed=${failed:-0}
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [ "$rc" -ne 0 ] || [ "$passed" -eq 0 ]; then
    results+=("js: FAILED (exit $rc; $passed passed, $failed failed) in $((SECONDS - start))s")
    failed_stages=$((failed_stages + 1))
  else
    results+=("js: ok ($passed passed) in $((SECONDS - start))s")
  fi
}

for s in "${stages[@]}"; do
  case "$s" in
    fuzz) run_fuzz ;;
    js) run_js ;;
    main)
      run_stage main build-test -- -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_SANITIZERS=OFF
      ;;
    asan)
      # CK_FORK=no: Check runs each test in-process, so the sanitizers see all of it.
      run_stage asan build-asan \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        CK_FORK=no \
        -- -DCMAKE_BUILD_TYPE=Debug -DENABLE_SANITIZERS=ON
      ;;
  esac
done

say "summary"
printf '  %s\n' "${results[@]}"
if [ "$failed_stages" -ne 0 ]; then
  echo "FAILED: $failed_stages of ${#stages[@]} stages"
else
  echo "all ${#stages[@]} stages passed"
fi
printf 'run-all: %d passed, %d failed\n' "$total_passed" "$total_failed"
[ "$failed_stages" -eq 0 ]
