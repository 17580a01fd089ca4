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
    The rescue kernel's parameters for one architecture (uname -m), from modules/kernel-params.json, the one
    place both image builders take them from: the consoles of that architecture, then the common ones
    (emergency.rescue=1, panic=10, loglevel=4). Unknown architectures are refused.
  */
  rescueKernelParams =
    arch:
    let
      spec = builtins.fromJSON (builtins.readFile ./kernel-params.json);
    in
    if spec.consoles ? ${arch} then
      spec.consoles.${arch} ++ spec.common
    else
      throw "modules/kernel-params.json has no consoles for ${arch}";

  /**
    The value of `loglevel=` in a parameter list, as an integer, or null when it has none. NixOS sets that
    parameter itself from boot.consoleLogLevel, so the module passes it there instead of twice.
  */
  logLevelOf =
    params:
    let
      found = builtins.filter (m: m != null) (map (match "loglevel=([0-9]+)") params);
    in
    if found == [ ] then null else builtins.fromJSON (builtins.head (last found));

  /**
    What keeps a final kernel parameter list from carrying the shared ones: each shared parameter that is
    missing, and the console= entries when they differ from the shared ones or their order (the last one is
    /dev/console). An empty list when all is well.
  */
  kernelParamProblems =
    shared: actual:
    let
      consoles = filter (p: match "console=.*" p != null);
    in
    map (p: "${p} is missing") (filter (p: !(elem p actual)) shared)
    ++ (
      if consoles actual == consoles shared then
        [ ]
      else
        [ "the consoles are ${concatStringsSep " " (consoles actual)}, not ${concatStringsSep " " (consoles shared)}" ]
    );

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
    image.info lines for the fields known at evaluation time, in the order docs/image-layout.md lists them, and
    the optional watchdog_modules when there are any. rescue_unpacked_bytes is measured by the builder and
    appended there.
  */
  imageInfo =
    {
      arch,
      name,
      watchdogModules ? [ ],
    }:
    if match "[^\n=]*" name == null then
      throw "image name must be one line without '=': ${name}"
    else
      ''
        format=1
        arch=${arch}
        name=${name}
      ''
      # Optional in docs/image-layout.md: written only when the rescue takes a watchdog over.
      + (if watchdogModules == [ ] then "" else "watchdog_modules=${concatStringsSep " " watchdogModules}\n");
}
