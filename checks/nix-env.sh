# shellcheck shell=sh
# Sourced by the checks/*.sh runners: finds nix-instantiate and lets it run without root.
# Nothing here evaluates nixpkgs or builds; Debian's nix-bin (Nix 2.8) is enough.

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "nix-instantiate not found: install Debian's nix-bin (apt-get install nix-bin)" >&2
  exit 1
fi

# Evaluation opens the Nix state directory; a user who cannot write /nix/var/nix gets a throwaway one.
if [ "$(id -u)" != 0 ] && [ ! -w /nix/var/nix ] && [ -z "${NIX_STATE_DIR-}" ]; then
  nix_env_tmp=$(mktemp -d)
  trap 'rm -rf "$nix_env_tmp"' EXIT
  export NIX_STATE_DIR="$nix_env_tmp/state" NIX_LOG_DIR="$nix_env_tmp/log"
fi
