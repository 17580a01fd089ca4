# Reads flake.nix without nixpkgs (Debian's Nix 2.8, no flakes) and checks that every output docs/nix.md
# promises is there: it calls `outputs` with a stub nixpkgs and only looks at attribute names, which never forces a
# package. That the values evaluate is checked with a real nixpkgs by `nix-eval flake-check` (docs/nix.md).
#   nix-instantiate --eval --strict checks/flake-outputs.nix
let
  flake = import ../flake.nix;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # Just enough of nixpkgs for the output *names*; anything that would build or evaluate a package throws.
  unavailable = what: throw "checks/flake-outputs.nix: ${what} needs nixpkgs; only output names are checked here";
  stubLib = {
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    mapAttrs' = f: set: builtins.listToAttrs (map (name: f name set.${name}) (builtins.attrNames set));
    nameValuePair = name: value: { inherit name value; };
    optionalAttrs = cond: set: if cond then set else { };
    getExe = _: unavailable "lib.getExe";
    nixosSystem = _: unavailable "lib.nixosSystem";
  };
  stubNixpkgs = {
    lib = stubLib;
    legacyPackages = stubLib.genAttrs systems (system: {
      stdenv.hostPlatform.system = system;
      callPackage = _: _: unavailable "callPackage";
      mkShell = _: unavailable "mkShell";
    });
  };

  inputNames = builtins.attrNames (builtins.functionArgs flake.outputs);
  self = flake.outputs {
    self = self // {
      outPath = toString ../.;
    };
    nixpkgs = stubNixpkgs;
  };

  has = path: set: path == [ ] || (builtins.isAttrs set && set ? ${builtins.head path} && has (builtins.tail path) set.${builtins.head path});
  required =
    [
      [
        "nixosModules"
        "emergency"
      ]
      [
        "nixosModules"
        "kexec"
      ]
    ]
    ++ builtins.concatMap (system: [
      [ "packages" system "image" ]
      [ "packages" system "emergency" ]
      [ "packages" system "default" ]
      [ "apps" system "emergency" ]
      [ "checks" system ]
      [ "devShells" system "default" ]
    ]) systems
    ++ [
      [ "checks" "x86_64-linux" "vm" ]
    ];
  missing = map (builtins.concatStringsSep ".") (builtins.filter (path: !has path self) required);

  # Each module is a file that exists and is a module (a function or an attribute set).
  badModules = builtins.filter (
    name:
    let
      path = self.nixosModules.${name};
    in
    !(builtins.pathExists path && (builtins.isFunction (import path) || builtins.isAttrs (import path)))
  ) (builtins.attrNames (self.nixosModules or { }));

  badApps = builtins.filter (system: (self.apps.${system}.emergency.type or null) != "app") systems;
  emptyChecks = builtins.filter (system: (self.checks.${system} or { }) == { }) systems;

  problems =
    (if inputNames == [ "nixpkgs" "self" ] then [ ] else [ "inputs: expected nixpkgs and self, got ${builtins.toJSON inputNames}" ])
    ++ map (path: "missing output ${path}") missing
    ++ map (name: "nixosModules.${name} is not a module file") badModules
    ++ map (system: "apps.${system}.emergency is not of type app") badApps
    ++ map (system: "checks.${system} is empty") emptyChecks;
in
if problems == [ ] then
  "flake-outputs: ${toString (builtins.length required)} outputs present (${builtins.concatStringsSep ", " (builtins.attrNames self)})"
else
  throw "flake-outputs: ${builtins.concatStringsSep "; " problems}"
