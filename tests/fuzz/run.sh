#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang in their own
# build directory and runs each for SECONDS (default 20), one after another.
#
#   tests/fuzz/run.sh                 every harness, 20 s each
#   tests/fuzz/run.sh 600             every harness, 10 min each
#   tests/fuzz/run.sh 60 jwt          only fuzz_jwt, 60 s
#
# Seeds come from tests/fuzz/corpus/<name>/, a dictionary from <name>.dict when
# there is one; both are only read. What the fuzzer learns goes to
# $WSGATE_FUZZ_BUILD/corpus/<name>/, crashes to .../artifacts/<name>/.
# Exit status is non-zero when a harness finds a crash, leak or timeout.
set -euo pipefail

secs=${1:-20}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${WSGATE_FUZZ_BUILD:-$root/build-fuzz}

CC=${CC:-clang} cmake -S "$root" -B "$build" -DWSGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >/dev/null
cmake --build "$build" -j2 >/dev/null

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for src in "$here"/fuzz_*.c; do
    n=$(basename "$src" .c)
    names+=("${n#fuzz_}")
  done
fi

status=0
for n in "${names[@]}"; do
  work="$build/corpus/$n"
  art="$build/artifacts/$n"
  mkdir -p "$work" "$art"
  dirs=("$work")
  dict=()
  [ -f "$here/$n.dict" ] && dict=(-dict="$here/$n.dict")
  [ -d "$here/corpus/$n" ] && dirs+=("$here/corpus/$n")
  printf 'fuzz: %s for %ss\n' "$n" "$secs" >&2
  if ! "$build/tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
      -print_final_stats=1 -artifact_prefix="$art/" ${dict[@]+"${dict[@]}"} "${dirs[@]}"; then
    printf 'fuzz: %s FAILED, see %s\n' "$n" "$art" >&2
    status=1
  fi
done
exit $status
