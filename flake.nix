{
  description = "emergency: kexec a remote Linux server into an in-memory NixOS rescue system, same addresses and host key";

  inputs.nixpkgs.url = "git+https://github.com/NixOS/nixpkgs?ref=nixos-26.05&shallow=1";

  # An index: each name points at the one file that defines it (docs/nix.md says what each does).
  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The rescue system with its image, for one platform; users build their own from nixosModules.kexec.
      rescue =
        system:
        lib.nixosSystem {
          modules = [
            self.nixosModules.kexec
            { nixpkgs.hostPlatform = system; }
          ];
        };
    in
    {
      nixosModules = {
        emergency = ./modules/rescue.nix;
        kexec = ./modules/kexec.nix;
      };

      nixosConfigurations = {
        rescue-x86_64 = rescue "x86_64-linux";
        rescue-aarch64 = rescue "aarch64-linux";
      };

      packages = forAllSystems (pkgs: rec {
        image = (rescue pkgs.stdenv.hostPlatform.system).config.system.build.emergencyImage;
        emergency = pkgs.callPackage ./modules/package.nix { flakeSource = self; };
        default = emergency;
      });

      apps = forAllSystems (pkgs: {
        emergency = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.emergency;
          meta.description = "Rescue a remote Linux server: emergency [options] [user@]host";
        };
      });

      # `nix flake check` builds every package and dev shell too (nixos-anywhere's pattern). The VM test runs
      # on x86_64-linux: one architecture proves the flow, and aarch64 builders with KVM are rare.
      checks = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
        in
        lib.mapAttrs' (name: lib.nameValuePair "package-${name}") self.packages.${system}
        // lib.mapAttrs' (name: lib.nameValuePair "devShell-${name}") self.devShells.${system}
        // lib.optionalAttrs (system == "x86_64-linux") {
          vm = import ./checks/vm.nix {
            inherit pkgs;
            inherit (self.packages.${system}) emergency image;
          };
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            # The oldest maintained Node LTS; 20 (package.json's floor) is end-of-life in nixpkgs.
            pkgs.nodejs_22
            # shellcheck-minimal is the same shellcheck binary without the Haskell library outputs.
            pkgs.shellcheck-minimal
            pkgs.qemu
            pkgs.openssh
            pkgs.cpio
            pkgs.zstd
          ];
        };
      });
    };
}
