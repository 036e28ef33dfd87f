#!/usr/bin/env bash
# Coverage-guided fuzzing of one target for a while: scripts/fuzz.sh <target> <seconds>
# (targets: authgate::fuzz_targets::TARGETS). Uses cargo fuzz (libFuzzer) on the nightly
# toolchain, installing cargo-fuzz if missing. The run starts from fuzz/corpus/<target>/ and
# writes what it finds into fuzz/work/<target>/ (not kept in git); at the end only the inputs
# that add coverage to the kept corpus are merged into it (libFuzzer -merge=1), so the corpus
# stays small. A crash is written to fuzz/artifacts/<target>/ and the run stops. The test suite
# replays the corpus on stable (tests/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh <target> <seconds>}"
secs="${2:-60}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi
# No leak detection: pingora and the caches keep process-lifetime allocations on purpose.
flags=(-detect_leaks=0 -rss_limit_mb=4096 -max_len=65536)
mkdir -p "fuzz/work/$target" "fuzz/corpus/$target"
cargo +nightly fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
  "${flags[@]}" -max_total_time="$secs" -print_final_stats=1
echo "fuzz: merging what adds coverage into fuzz/corpus/$target"
cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/work/$target" -- \
  "${flags[@]}" -merge=1
