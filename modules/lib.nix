# Pure helpers for the flake: builtins only, no nixpkgs, so CI tests them with Debian's Nix 2.8
# (checks/lib-tests.nix). Not a NixOS module.
let
  inherit (builtins)
    concatStringsSep
    elem
    elemAt
    filter
    isString
    length
    mapAttrs
    match
    split
    substring
    ;

  # The last element of a list; `split` always ends with a string, so this is the text after the last match.
  last = list: elemAt list (length list - 1);
in
rec {
  /**
    The package a package-lock.json entry installs: its own `name` (set for aliases) or the text after the
    last `node_modules/` of its path ("node_modules/a/node_modules/@s/b" -> "@s/b").
  */
  lockEntryName = path: entry: entry.name or (last (split "node_modules/" path));

  /**
    The tarball URL npm writes as `resolved` for a registry package:
    REGISTRY/NAME/-/BASENAME-VERSION.tgz, where BASENAME drops the @scope/ of a scoped name.
  */
  registryTarball =
    registry: path: entry:
    let
      name = lockEntryName path entry;
      base = last (filter isString (split "/" name));
    in
    "${registry}/${name}/-/${base}-${entry.version}.tgz";

  /**
    A package-lock.json (parsed) with `resolved` filled in for every registry entry that lacks it.
    npm leaves it out when `omit-lockfile-registry-resolved` is set (as on this project's machines), and
    nixpkgs' importNpmLock needs it to fetch each tarball, checked against the lock's `integrity`.
    The root entry (""), workspace links and bundled entries are left as they are.
  */
  withRegistryUrls =
    registry: lock:
    lock
    // {
      packages = mapAttrs (
        path: entry:
        if
          substring 0 13 path != "node_modules/"
          || entry ? resolved
          || (entry.link or false)
          || (entry.inBundle or false)
        then
          entry
        else
          entry // { resolved = registryTarball registry path entry; }
      ) lock.packages;
    };

  /**
    The rescue kernel command line: init= first, then the configured parameters, and the marker
    `emergency.rescue=1` that the orchestrator and the tests look for in /proc/cmdline (added if missing).
  */
  kernelCmdline =
    init: params:
    concatStringsSep " " (
      [ "init=${init}" ] ++ params ++ (if elem "emergency.rescue=1" params then [ ] else [ "emergency.rescue=1" ])
    );

  /**
    image.info lines for the fields known at evaluation time, in the order docs/image-layout.md lists them.
    rescue_unpacked_bytes is measured by the builder and appended there.
  */
  imageInfo =
    { arch, name }:
    if match "[^\n=]*" name == null then
      throw "image name must be one line without '=': ${name}"
    else
      ''
        format=1
        arch=${arch}
        name=${name}
      '';
}
