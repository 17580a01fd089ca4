# Evaluation tests for modules/lib.nix, the flake's pure helpers: no nixpkgs, runs on Debian's Nix 2.8.
#   nix-instantiate --eval --strict checks/lib-tests.nix
# Evaluates to a summary string, or fails naming every case whose result differs.
let
  lib = import ../modules/lib.nix;
  throws = expr: !(builtins.tryEval expr).success;

  lock = {
    lockfileVersion = 3;
    packages = {
      "" = {
        name = "emergency";
        version = "0.1.0";
      };
      "node_modules/zx" = {
        version = "8.8.5";
        integrity = "sha512-zx";
      };
      "node_modules/@types/node" = {
        version = "20.19.43";
      };
      "node_modules/cliui/node_modules/string-width" = {
        version = "7.2.0";
      };
      "node_modules/aliased" = {
        name = "real-name";
        version = "1.0.0";
      };
      "node_modules/pinned" = {
        version = "1.0.0";
        resolved = "https://example.invalid/pinned.tgz";
      };
      "node_modules/local" = {
        resolved = "packages/local";
        link = true;
      };
      "packages/local" = {
        version = "0.0.1";
      };
    };
  };
  resolved = (lib.withRegistryUrls "https://registry.npmjs.org" lock).packages;

  cases = [
    {
      name = "lockEntryName: plain";
      expr = lib.lockEntryName "node_modules/zx" { };
      expected = "zx";
    }
    {
      name = "lockEntryName: nested and scoped";
      expr = lib.lockEntryName "node_modules/a/node_modules/@s/b" { };
      expected = "@s/b";
    }
    {
      name = "lockEntryName: alias uses its own name";
      expr = lib.lockEntryName "node_modules/aliased" { name = "real-name"; };
      expected = "real-name";
    }
    {
      name = "withRegistryUrls: plain package";
      expr = resolved."node_modules/zx".resolved;
      expected = "https://registry.npmjs.org/zx/-/zx-8.8.5.tgz";
    }
    {
      name = "withRegistryUrls: keeps integrity";
      expr = resolved."node_modules/zx".integrity;
      expected = "sha512-zx";
    }
    {
      name = "withRegistryUrls: scoped package drops the scope in the file name";
      expr = resolved."node_modules/@types/node".resolved;
      expected = "https://registry.npmjs.org/@types/node/-/node-20.19.43.tgz";
    }
    {
      name = "withRegistryUrls: nested package";
      expr = resolved."node_modules/cliui/node_modules/string-width".resolved;
      expected = "https://registry.npmjs.org/string-width/-/string-width-7.2.0.tgz";
    }
    {
      name = "withRegistryUrls: alias fetches the real package";
      expr = resolved."node_modules/aliased".resolved;
      expected = "https://registry.npmjs.org/real-name/-/real-name-1.0.0.tgz";
    }
    {
      name = "withRegistryUrls: existing resolved is kept";
      expr = resolved."node_modules/pinned".resolved;
      expected = "https://example.invalid/pinned.tgz";
    }
    {
      name = "withRegistryUrls: links, workspaces and the root are untouched";
      expr = [
        resolved."node_modules/local"
        resolved."packages/local"
        resolved.""
      ];
      expected = [
        lock.packages."node_modules/local"
        lock.packages."packages/local"
        lock.packages.""
      ];
    }
    {
      name = "withRegistryUrls: other lock fields are kept";
      expr = (lib.withRegistryUrls "r" lock).lockfileVersion;
      expected = 3;
    }
    {
      name = "kernelCmdline: init first, marker appended";
      expr = lib.kernelCmdline "/nix/store/x-system/init" [
        "console=tty0"
        "console=ttyS0,115200"
      ];
      expected = "init=/nix/store/x-system/init console=tty0 console=ttyS0,115200 emergency.rescue=1";
    }
    {
      name = "kernelCmdline: marker not doubled";
      expr = lib.kernelCmdline "/i" [
        "emergency.rescue=1"
        "quiet"
      ];
      expected = "init=/i emergency.rescue=1 quiet";
    }
    {
      name = "rescueKernelParams: x86_64 has the serial console last, then the shared ones";
      expr = lib.rescueKernelParams "x86_64";
      expected = [
        "console=tty0"
        "console=ttyS0,115200"
        "emergency.rescue=1"
        "panic=10"
        "loglevel=4"
      ];
    }
    {
      name = "rescueKernelParams: aarch64 uses the PL011 serial console";
      expr = builtins.elemAt (lib.rescueKernelParams "aarch64") 1;
      expected = "console=ttyAMA0,115200";
    }
    {
      name = "rescueKernelParams: an architecture without consoles is refused";
      expr = throws (lib.rescueKernelParams "riscv64");
      expected = true;
    }
    {
      name = "logLevelOf: the last loglevel= wins, none gives null";
      expr = [
        (lib.logLevelOf [
          "loglevel=4"
          "quiet"
          "loglevel=7"
        ])
        (lib.logLevelOf [ "quiet" ])
      ];
      expected = [
        7
        null
      ];
    }
    {
      name = "kernelParamProblems: a superset with the same consoles is fine";
      expr = lib.kernelParamProblems [ "console=tty0" "panic=10" ] [ "console=tty0" "nohibernate" "panic=10" ];
      expected = [ ];
    }
    {
      name = "kernelParamProblems: a missing panic= and reordered consoles are named";
      expr = lib.kernelParamProblems [ "console=tty0" "console=ttyS0,115200" "panic=10" ] [
        "console=ttyS0,115200"
        "console=tty0"
      ];
      expected = [
        "panic=10 is missing"
        "the consoles are console=ttyS0,115200 console=tty0, not console=tty0 console=ttyS0,115200"
      ];
    }
    {
      name = "imageInfo: fields in layout order";
      expr = lib.imageInfo {
        arch = "aarch64";
        name = "NixOS 26.05 rescue";
      };
      expected = "format=1\narch=aarch64\nname=NixOS 26.05 rescue\n";
    }
    {
      name = "imageInfo: the watchdog modules the rescue takes over, space-separated";
      expr = lib.imageInfo {
        arch = "x86_64";
        name = "r";
        watchdogModules = [
          "i6300esb"
          "iTCO_wdt"
        ];
      };
      expected = "format=1\narch=x86_64\nname=r\nwatchdog_modules=i6300esb iTCO_wdt\n";
    }
    {
      name = "imageInfo: a name that would break the key=value format is refused";
      expr = throws (lib.imageInfo {
        arch = "x86_64";
        name = "a\nformat=2";
      });
      expected = true;
    }
  ];

  failures = builtins.filter (c: c.expr != c.expected) cases;
  describe =
    c: "${c.name}\n    expected ${builtins.toJSON c.expected}\n    got      ${builtins.toJSON c.expr}";
in
if failures == [ ] then
  "lib-tests: all ${toString (builtins.length cases)} cases pass"
else
  throw "lib-tests: ${toString (builtins.length failures)} of ${toString (builtins.length cases)} failed:\n  ${
    builtins.concatStringsSep "\n  " (map describe failures)
  }"
