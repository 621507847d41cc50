#!/usr/bin/env python3
"""bitnetctl's daemon commands, the libbitnet-client example program and the
library's exported symbols, against a real bitnetd.

Usage: test_bitnetctl.py BITNETD BITNETCTL EXAMPLE LIBBITNET_CLIENT
"""
import json
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Daemon  # noqa: E402

BITNETD = CTL = EXAMPLE = LIB = None


def run(*argv, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("BITNETD_SOCKET", "BITNET_SIMD")}
    e.update(env or {})
    return subprocess.run(list(argv), capture_output=True, timeout=GUARD_SECONDS, env=e)


class Bitnetctl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(BITNETD)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.close()
        assert rc == 0

    def ctl(self, *args, **kw):
        return run(CTL, "--socket", self.d.socket, *args, **kw)

    def test_status(self):
        r = self.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"status:       Serving", r.stdout)
        self.assertIn(f"pid {self.d.proc.pid}".encode(), r.stdout)
        r = self.ctl("status", "--json")
        st = json.loads(r.stdout)
        self.assertEqual(st["pid"], self.d.proc.pid)
        self.assertEqual(st["models"], [])
        # $BITNETD_SOCKET is the default when --socket is absent.
        r = run(CTL, "status", "--json", env={"BITNETD_SOCKET": self.d.socket})
        self.assertEqual(json.loads(r.stdout)["pid"], self.d.proc.pid)

    def test_status_without_daemon_exits_3(self):
        r = run(CTL, "--socket", self.d.dir + "/none.sock", "status")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"cannot reach bitnetd", r.stderr)

    def test_call(self):
        r = self.ctl("call", "org.varlink.service.GetInterfaceDescription",
                     '{"interface":"io.bitnetd.Query"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("interface io.bitnetd.Query", json.loads(r.stdout)["description"])
        r = self.ctl("call", "io.bitnetd.Inference.Cancel", '{"job": 12}')
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), b'io.bitnetd.Inference.JobNotFound {"job":12}')
        r = self.ctl("call", "io.bitnetd.Query.GetStatus", "--more", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 1)  # one reply, compact
        r = self.ctl("call", "io.bitnetd.Query.GetStatus", "[]")
        self.assertEqual(r.returncode, 2)
        r = self.ctl("call")
        self.assertEqual(r.returncode, 2)

    def test_capabilities_come_from_the_daemon_when_reachable(self):
        r = self.ctl("capabilities", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        from_daemon = json.loads(r.stdout)
        r = self.ctl("capabilities", "--json", "--local")
        self.assertEqual(r.stderr, b"")
        local = json.loads(r.stdout)
        # Same build: the same kernels compiled. ("supported" may differ when
        # the daemon runs under a CPU emulator such as valgrind.)
        self.assertEqual([(k["id"], k["compiled"]) for k in from_daemon["kernels"]],
                         [(k["id"], k["compiled"]) for k in local["kernels"]])
        self.assertEqual(from_daemon["build"], local["build"])

    def test_capabilities_fall_back_to_the_local_report(self):
        r = run(CTL, "--socket", self.d.dir + "/none.sock", "capabilities", "--json")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"not reachable", r.stderr)
        self.assertIn("kernels", json.loads(r.stdout))

    def test_example_program(self):
        r = run(EXAMPLE, self.d.socket)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertTrue(lines[0].startswith("status: {"), lines)
        self.assertEqual(json.loads(lines[0][len("status: "):])["pid"], self.d.proc.pid)
        self.assertEqual(lines[1], 'error: org.varlink.service.MethodNotFound '
                                   '{"method":"io.bitnetd.Query.NoSuchMethod"}')


class Library(unittest.TestCase):
    def test_exports_only_bitnet_client_symbols(self):
        r = run("nm", "-D", "--defined-only", LIB)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [line.split()[-1].split("@")[0] for line in r.stdout.decode().splitlines() if line.strip()]
        functions = [n for n in names if n != "BITNET_CLIENT_0"]
        self.assertIn("bitnet_client_call", functions)
        self.assertEqual([n for n in functions if not n.startswith("bitnet_client_")], [])


if __name__ == "__main__":
    BITNETD, CTL, EXAMPLE, LIB = sys.argv[1:5]
    del sys.argv[1:5]
    unittest.main(verbosity=2)
