#!/usr/bin/env python3
"""The streaming example of the documented Python client, run exactly as
docs/clients/python.py documents it (`python3 python.py --socket S generate
-n N PROMPT`) against a real bitnetd with a model from bitnet-mkmodel.

Its stdout must be the text the daemon streams for that request (read here
piece by piece over a raw connection) and the text bitnet-run generates
in-process; its stderr line must be the final reply (finish reason, usage
whose token count is the one asked for, the job id).

Usage: test_python_example.py BITNETD BITNET_MKMODEL BITNET_RUN DOCS_CLIENT
"""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Conn, Daemon, tiny_model_dir  # noqa: E402

BITNETD = MKMODEL = BITNET_RUN = CLIENT = None


def raw_pieces(d, prompt, n):
    """The text replies of a greedy Generate over a raw connection."""
    c = Conn(d.connect())
    try:
        c.send({"method": "io.bitnetd.Inference.Generate",
                "parameters": {"prompt": prompt, "max_tokens": n}, "more": True})
        pieces = []
        while True:
            r = c.recv()
            assert r is not None and "error" not in r, r
            if "text" in r["parameters"]:
                pieces.append(r["parameters"]["text"])
            if not r.get("continues"):
                return pieces, r["parameters"]
    finally:
        c.close()


class PythonExample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.model = tiny_model_dir(MKMODEL, "bitnetd-pyex-", 3)
        cls.d = Daemon(BITNETD, args=["--threads", "1", "--model", cls.model])

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0

    def example(self, *args):
        return subprocess.run([sys.executable, CLIENT, "--socket", self.d.socket, "generate"]
                              + list(args), capture_output=True, timeout=GUARD_SECONDS)

    def bitnet_run(self, prompt, n):
        out = subprocess.run([BITNET_RUN, "-m", self.model, "-p", prompt, "-n", str(n), "-t", "1"],
                             check=True, capture_output=True, timeout=GUARD_SECONDS).stdout
        self.assertTrue(out.startswith(prompt.encode()) and out.endswith(b"\n"), out)
        return out[len(prompt.encode()):-1].decode()

    def test_streams_the_generation_to_stdout(self):
        for prompt, n in (("Hello world", 40), ("Once upon a time", 7)):
            r = self.example("-n", str(n), prompt)
            self.assertEqual(r.returncode, 0, r.stderr)
            final = json.loads(r.stderr)
            self.assertIsInstance(final["job"], int)
            self.assertEqual(final["usage"]["generated_tokens"], n)
            self.assertEqual(final["finish_reason"], "length")
            self.assertEqual(final["backend"], "native")
            text = r.stdout.decode()
            pieces, raw_final = raw_pieces(self.d, prompt, n)
            self.assertGreater(len(pieces), 0)
            self.assertEqual(text, "".join(pieces))
            self.assertEqual(final["usage"]["prompt_tokens"], raw_final["usage"]["prompt_tokens"])
            self.assertEqual(text, self.bitnet_run(prompt, n))

    def test_errors_and_usage(self):
        r = self.example("-n", "0", "Hello")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"org.varlink.service.InvalidParameter", r.stderr)
        self.assertIn(b"max_tokens", r.stderr)
        r = self.example("-n", "many", "Hello")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"generate", r.stderr)
        r = subprocess.run([sys.executable, CLIENT, "--socket", self.d.dir + "/none.sock",
                            "generate", "Hello"], capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 3)

    def test_docstring_example_runs(self):
        # The module docstring's streaming loop, run as written against the
        # daemon: it must print the same text as the command line.
        with open(CLIENT) as f:
            doc = f.read().split('"""')[1]
        lines = [ln[4:] for ln in doc.split("\n") if ln.startswith("    ")]
        start = next(i for i, ln in enumerate(lines) if ln.startswith("client = Client()"))
        code = "\n".join(lines[start:])
        code = code.replace('"max_tokens": 32', '"max_tokens": 12')
        prog = ("import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('c', {CLIENT!r})\n"
                "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
                "Client = m.Client\n" + code + "\n")
        env = dict(os.environ, BITNETD_SOCKET=self.d.socket)
        r = subprocess.run([sys.executable, "-B", "-c", prog], env=env, capture_output=True,
                           timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertTrue(out.endswith("\n"), out)
        text, _, tail = out[:-1].rpartition("\n")
        self.assertEqual(tail.split(), ["length", "12"])
        self.assertEqual(text, self.bitnet_run("Hello", 12))


if __name__ == "__main__":
    BITNETD, MKMODEL, BITNET_RUN, CLIENT = (sys.argv.pop(1) for _ in range(4))
    unittest.main(verbosity=2)
