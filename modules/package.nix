# The orchestrator CLI (`emergency`), for callPackage. Not a NixOS module.
#
# Built from the same package.json/package-lock.json as `npm ci`: importNpmLock fetches every dependency by the
# lock's own integrity hash, so there is no hand-computed dependency hash to keep in step.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs_22,
  openssh,
  nix,
  # The flake source the CLI builds its image from (`nix build $EMERGENCY_FLAKE#image`); null leaves it unset.
  flakeSource ? null,
}:
let
  emergencyLib = import ./lib.nix;
  package = lib.importJSON ../package.json;
  # Only what `npm run build` and `npm pack` read, so editing docs or Nix files does not rebuild the CLI.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../ts
      ../scripts
    ];
  };
  # Node 20 (the engines floor) is end-of-life and marked insecure in nixpkgs 26.05, so it would not evaluate;
  # 22 is the oldest maintained LTS and satisfies `engines: >=20`.
  buildNpmPackage' = buildNpmPackage.override { nodejs = nodejs_22; };
in
buildNpmPackage' {
  pname = package.name;
  inherit (package) version;
  inherit src;

  npmDeps = importNpmLock {
    inherit package;
    packageLock = emergencyLib.withRegistryUrls "https://registry.npmjs.org" (
      lib.importJSON ../package-lock.json
    );
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # `npm run build` (tsc) writes dist/; package.json's bin (dist/cli.js) is wrapped by npmInstallHook with these.
  makeWrapperArgs = [
    "--prefix"
    "PATH"
    ":"
    (lib.makeBinPath [
      openssh
      nix
    ])
  ]
  ++ lib.optionals (flakeSource != null) [
    "--set-default"
    "EMERGENCY_FLAKE"
    "${flakeSource}"
  ];

  meta = {
    description = package.description;
    license = lib.licenses.mit;
    mainProgram = "emergency";
    platforms = lib.platforms.linux;
  };
}
