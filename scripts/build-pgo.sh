#!/usr/bin/env bash
# A profile-guided (PGO) release build of authgate, and of examples/bare_pingora for
# like-for-like comparisons. BENCHMARKS.md ("Profile-guided build") says what it buys.
#   1. an instrumented build (target/pgo/gen);
#   2. training: benches/load.py --train runs the load bench's gateways on it: signed-in
#      requests through the cookie, memory and Redis stores, the public route, sign-ins
#      against the local OpenID provider, and requests without a session;
#   3. the profile, merged by the toolchain's own llvm-profdata (rustup's llvm-tools: a
#      distribution's llvm-profdata of another LLVM version cannot read it);
#   4. the final build with the profile. Out: target/pgo/authgate, target/pgo/bare_pingora.
# Usage: scripts/build-pgo.sh [SECONDS per training run, default 4]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-4}"
benches/peers.sh
rustup component add llvm-tools >/dev/null
triple="$(rustc -vV | sed -n 's/^host: //p')"
profdata="$(rustc --print sysroot)/lib/rustlib/$triple/bin/llvm-profdata"
out="$PWD/target/pgo"
rm -rf "$out/raw" && mkdir -p "$out/raw"

# Built for an explicit target, so RUSTFLAGS reach authgate and its dependencies but not the
# build scripts and proc macros (which would write profiles of their own).
build() {
  RUSTFLAGS="$1" CARGO_TARGET_DIR="$2" cargo build --release --locked --target "$triple" \
    --bin authgate --example bare_pingora
}

build "-Cprofile-generate=$out/raw" "$out/gen"
AUTHGATE_BIN="$out/gen/$triple/release/authgate" \
BARE_PINGORA_BIN="$out/gen/$triple/release/examples/bare_pingora" \
  python3 benches/load.py --train "$seconds" \
    --only "authgate public,authgate session,authgate session (memory),authgate session (redis)"
# Each binary writes its profile when it exits; none means the training did not reach it.
compgen -G "$out/raw/*.profraw" >/dev/null || { echo "build-pgo: training wrote no profile" >&2; exit 1; }
"$profdata" merge -o "$out/authgate.profdata" "$out"/raw/*.profraw

build "-Cprofile-use=$out/authgate.profdata" "$out/use"
cp "$out/use/$triple/release/authgate" "$out/use/$triple/release/examples/bare_pingora" "$out/"
echo "build-pgo: $out/authgate (and $out/bare_pingora), profile $out/authgate.profdata"
