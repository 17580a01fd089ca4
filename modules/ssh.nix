# sshd: key-only, and only the old system's host keys. The keys are not in the image: restore.nix installs them
# from the data kexec-run.sh appended to the initrd, before sshd starts. No key is ever generated, so a
# client that reaches the rescue system sees the host key it already trusts, or no sshd at all.
{ ... }:
{
  services.openssh = {
    enable = true;
    # Every type the old system may have; sshd skips the files that are absent.
    hostKeys = [
      {
        type = "ed25519";
        path = "/etc/ssh/ssh_host_ed25519_key";
      }
      {
        type = "ecdsa";
        path = "/etc/ssh/ssh_host_ecdsa_key";
      }
      {
        type = "rsa";
        path = "/etc/ssh/ssh_host_rsa_key";
      }
    ];
    # sshd-keygen would create the missing types above, and a fresh key is a different host to every client.
    generateHostKeys = false;
    # restore.sh writes root's keys to ~/.ssh/authorized_keys.
    authorizedKeysInHomedir = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
}
