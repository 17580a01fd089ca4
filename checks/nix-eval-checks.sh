#!/bin/sh
# Runs the evaluation checks that need no nixpkgs: checks/flake-outputs.nix (the flake has every promised
# output) and checks/lib-tests.nix (the pure helpers in modules/lib.nix). Each prints one summary line or
# fails with the reason.
set -eu
cd "$(dirname "$0")/.."
. checks/nix-env.sh

failed=0
for check in checks/flake-outputs.nix checks/lib-tests.nix; do
  if out=$(nix-instantiate --eval --strict "$check" 2>&1); then
    # A string result prints quoted.
    printf '%s\n' "$out" | sed 's/^"\(.*\)"$/\1/'
  else
    failed=$((failed + 1))
    printf '%s: FAIL\n%s\n' "$check" "$out" >&2
  fi
done
[ "$failed" = 0 ]
