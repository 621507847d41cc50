#!/usr/bin/env python3
"""io.bitnetd.Admin.AnalyzeLibrary against a real bitnetd: the analysis of
the reference llama.cpp CPU build is the object `bitnetctl analyze-library
--json` prints for the same file, a file that is not ELF is refused with
LibraryAnalysisFailed naming it, and the daemon keeps serving.

Usage: test_analyze_library.py BITNETD BITNETCTL REFERENCE_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import Conn, Daemon  # noqa: E402

BITNETD = BITNETCTL = REFERENCE = None
METHOD = "io.bitnetd.Admin.AnalyzeLibrary"


class AnalyzeLibrary(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cpu_llama = os.path.join(REFERENCE, "linux-x64", "bins", "linux-x64",
                                     "libllama.v0.5.0.so")
        if not os.path.exists(cls.cpu_llama):
            raise unittest.SkipTest(f"{cls.cpu_llama} missing (run scripts/fetch-reference.sh)")
        cls.dir = tempfile.mkdtemp(prefix="bitnetd-analyze-")
        os.chmod(cls.dir, 0o755)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.d = Daemon(BITNETD)
        self.addCleanup(self.d.close)
        self.c = Conn(self.d.connect())
        self.addCleanup(self.c.close)

    def assert_serving(self):
        status = self.c.call("io.bitnetd.Query.GetStatus")
        self.assertEqual(status["parameters"]["pid"], self.d.proc.pid)

    def test_cpu_libllama_is_the_same_analysis_bitnetctl_prints(self):
        reply = self.c.call(METHOD, {"path": self.cpu_llama})
        self.assertIn("parameters", reply, reply)
        analysis = reply["parameters"]["analysis"]
        ids = [k["id"] for k in analysis["kernels"]]
        self.assertIn("llama.cpu", ids)
        self.assertFalse(analysis["cuda"]["inference"])
        local = subprocess.run([BITNETCTL, "analyze-library", "--json", self.cpu_llama],
                               check=True, capture_output=True, text=True)
        self.assertEqual(analysis, json.loads(local.stdout))
        self.assert_serving()

    def test_text_file_named_so_is_refused_naming_the_file(self):
        path = os.path.join(self.dir, "libfake.so")
        with open(path, "w") as f:
            f.write("this is not a shared library\n")
        reply = self.c.call(METHOD, {"path": path})
        self.assertEqual(reply.get("error"), "io.bitnetd.Admin.LibraryAnalysisFailed", reply)
        self.assertEqual(reply["parameters"]["path"], path)
        self.assertIn(path, reply["parameters"]["reason"])
        self.assertIn("ELF", reply["parameters"]["reason"])
        self.assert_serving()

    def test_missing_file_and_bad_parameters(self):
        path = os.path.join(self.dir, "nonexistent.so")
        reply = self.c.call(METHOD, {"path": path})
        self.assertEqual(reply.get("error"), "io.bitnetd.Admin.LibraryAnalysisFailed", reply)
        self.assertIn("No such file", reply["parameters"]["reason"])
        reply = self.c.call(METHOD, {"path": 7})
        self.assertEqual(reply.get("error"), "org.varlink.service.InvalidParameter")
        reply = self.c.call(METHOD)
        self.assertEqual(reply.get("error"), "org.varlink.service.InvalidParameter")
        self.assert_serving()

    def test_other_calls_are_served_while_analyses_run(self):
        # Several analyses in flight on other connections; this one still answers.
        others = [Conn(self.d.connect()) for _ in range(3)]
        for o in others:
            self.addCleanup(o.close)
            o.send({"method": METHOD, "parameters": {"path": self.cpu_llama}})
        self.assert_serving()
        for o in others:
            self.assertIn("analysis", o.recv()["parameters"])
        self.assertEqual(self.d.stop(), 0)


if __name__ == "__main__":
    BITNETD, BITNETCTL, REFERENCE = sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
