# dnf4's seamless plugin (dnf-plugins/seamless.py): after a transaction that
# installed a kernel package it runs 'seamless dnf-hook', which shows what a
# seamless update would carry and acts as "apply =" in
# /etc/seamless/seamless.conf says. It runs once dnf has released its rpmdb
# lock; the update itself (apply = now) also waits for dnf's and rpm's
# locks. It never fails the transaction.
#
# /etc/dnf/plugins/seamless.conf: [main] enabled = 1; command = the seamless
# binary (default /usr/bin/seamless).

import fnmatch
import logging
import os
import subprocess

import dnf

KERNEL_PACKAGES = ("kernel", "kernel*-core", "kernel-uek*")


def is_kernel(pkg):
    return any(fnmatch.fnmatchcase(pkg.name, p) for p in KERNEL_PACKAGES)


class Seamless(dnf.Plugin):
    name = "seamless"

    def __init__(self, base, cli):
        super(Seamless, self).__init__(base, cli)
        self.command = "/usr/bin/seamless"

    def config(self):
        conf = self.read_config(self.base.conf)
        if conf.has_section("main") and conf.has_option("main", "command"):
            self.command = conf.get("main", "command")

    def transaction(self):
        kernels = [str(p) for p in self.base.transaction.install_set if is_kernel(p)]
        if not kernels or not os.access(self.command, os.X_OK):
            return
        cmd = [self.command, "dnf-hook", "--installroot=" + self.base.conf.installroot] + kernels
        try:
            subprocess.call(cmd, stdin=subprocess.DEVNULL, stdout=2)
        except OSError as e:
            logging.getLogger("dnf").warning("seamless: %s: %s", self.command, e)
