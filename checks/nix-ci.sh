#!/bin/sh
# The Nix checks CI can run (Debian's nix-bin, no nixpkgs, no builds): every .nix file parses, the flake has
# its promised outputs, the pure Nix helpers pass their tests. Called by .ci/run as `bash checks/nix-ci.sh`.
# What needs a real nixpkgs (the modules, the image, the VM test) is checked elsewhere: docs/nix.md.
set -eu
cd "$(dirname "$0")/.."

passed=0
failed=0
for step in checks/parse-nix.sh checks/nix-eval-checks.sh; do
  if sh "$step"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "nix-ci: $step failed" >&2
  fi
done
# Not the "N passed, N failed" form: CI reads that as the test summary, which npm test prints later.
echo "nix-ci: $passed step(s) passed, $failed step(s) failed"
[ "$failed" = 0 ]
