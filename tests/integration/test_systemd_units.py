#!/usr/bin/env python3
"""systemd/bitnetd.service and bitnetd.socket, as this build configures them,
pass `systemd-analyze verify` (with ExecStart= pointing at the built
bitnetd, so the check that the command exists and is executable is real),
and `systemd-analyze security --offline=yes` rates the service's exposure
at most 2.0. Skipped, with the reason, when systemd-analyze is not
installed.

Usage: test_systemd_units.py BITNETD UNIT_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean

BITNETD = UNIT_DIR = None
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")


@unittest.skipUnless(ANALYZE, "systemd-analyze is not installed (Debian package systemd)")
class Units(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="bitnetd-units-")
        with open(os.path.join(UNIT_DIR, "bitnetd.service")) as f:
            service = f.read()
        # The installed path becomes the built binary; its arguments stay.
        service, n = re.subn(r"^ExecStart=\S+", "ExecStart=" + os.path.abspath(BITNETD),
                             service, flags=re.M)
        assert n == 1, "bitnetd.service has no single ExecStart="
        cls.service = os.path.join(cls.dir, "bitnetd.service")
        with open(cls.service, "w") as f:
            f.write(service)
        cls.socket = os.path.join(cls.dir, "bitnetd.socket")
        shutil.copyfile(os.path.join(UNIT_DIR, "bitnetd.socket"), cls.socket)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def analyze(self, *args):
        return subprocess.run([ANALYZE, *args], capture_output=True, text=True, cwd=self.dir,
                              env=dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="",
                                       SYSTEMD_COLORS="0"))

    def test_units_verify(self):
        r = self.analyze("verify", self.service, self.socket)
        complaints = [line for line in r.stderr.splitlines() if "bitnetd" in line]
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(complaints, [])

    def test_verify_notices_a_missing_binary(self):
        # The control: the same unit with a binary that does not exist fails,
        # so the check above is looking at ExecStart=.
        broken = os.path.join(self.dir, "broken")
        os.makedirs(broken, exist_ok=True)
        with open(self.service) as f:
            text = f.read()
        text = re.sub(r"^ExecStart=\S+", "ExecStart=" + os.path.join(broken, "no-such-bitnetd"),
                      text, flags=re.M)
        with open(os.path.join(broken, "bitnetd.service"), "w") as f:
            f.write(text)
        shutil.copyfile(self.socket, os.path.join(broken, "bitnetd.socket"))
        r = self.analyze("verify", os.path.join(broken, "bitnetd.service"),
                         os.path.join(broken, "bitnetd.socket"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no-such-bitnetd", r.stderr)

    def test_service_exposure_is_low(self):
        r = self.analyze("security", "--offline=yes", "--no-pager", self.service)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"Overall exposure level for bitnetd\.service: (\d+(?:\.\d+)?)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        score = float(m.group(1))
        print(f"bitnetd.service exposure: {score}", file=sys.stderr)
        self.assertLessEqual(score, MAX_EXPOSURE, r.stdout)


if __name__ == "__main__":
    BITNETD, UNIT_DIR = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
