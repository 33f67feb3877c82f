#!/usr/bin/env bash
# Short, bounded fuzzing for CI: each target for FUZZ_SECONDS (default 30)
# seconds, one job, seeded from fuzz/seeds/TARGET. Exits non-zero when a target crashes; the
# crashing input is left in fuzz/artifacts/TARGET/ (turn it into a test in
# tests/fuzz_regressions.rs). cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the
# stable toolchain provide them (-Zsanitizer=address).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
# hopproxy forbids unsafe code, so AddressSanitizer only watches C dependencies that the
# fuzzed paths do not reach; without it the build is much faster. FUZZ_SANITIZER=address
# brings it back for long runs.
sanitizer="${FUZZ_SANITIZER:-none}"
targets=(request_head response_head chunked_body config_parse proxy_header client_hello)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (about a minute)"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1

# Build all targets first, so each target's time budget is spent fuzzing.
cargo fuzz build -O -s "$sanitizer"

for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzzing $target for ${seconds}s"
  # -timeout: a single input taking 10 s is a hang, reported as a crash. The full libFuzzer
  # output goes to fuzz/logs/TARGET.log; the summary lines are shown.
  mkdir -p fuzz/logs
  set +e
  cargo fuzz run -O -s "$sanitizer" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"fuzz/logs/$target.log" 2>&1
  status=$?
  set -e
  grep -E "^#[0-9]+[[:space:]]+INITED|^Done [0-9]+ runs|ERROR|SUMMARY|panicked|Test unit written" \
    "fuzz/logs/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target FAILED (exit $status); crashing input in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
