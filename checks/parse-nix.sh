#!/bin/sh
# Every tracked .nix file must parse with the Nix CI has (nix-instantiate --parse), so a syntax error fails in
# CI, naming the file, rather than on the first machine with Nix.
set -eu
cd "$(dirname "$0")/.."
. checks/nix-env.sh

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files '*.nix')
else
  files=$(find . -name '*.nix' -not -path './node_modules/*' | sed 's|^\./||' | sort)
fi

count=0
failed=0
for file in $files; do
  count=$((count + 1))
  if ! err=$(nix-instantiate --parse "$file" 2>&1 >/dev/null); then
    failed=$((failed + 1))
    printf 'parse-nix: FAIL %s\n%s\n' "$file" "$err" >&2
  fi
done
if [ "$count" = 0 ]; then
  echo "parse-nix: no .nix files found" >&2
  exit 1
fi
echo "parse-nix: $count files, $failed failed"
[ "$failed" = 0 ]
