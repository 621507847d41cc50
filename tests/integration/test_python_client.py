#!/usr/bin/env python3
"""The documented stdlib Python client (docs/clients/python.py) against a
real bitnetd, and the interface definitions it serves: each parses under
the Varlink grammar, every method listed is answered, and nothing else is.

Usage: test_python_client.py BITNETD DOCS_CLIENT
"""
import importlib.util
import json
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import varlink_grammar  # noqa: E402
from fixture import GUARD_SECONDS, Daemon  # noqa: E402

BITNETD = CLIENT = None


def load_client():
    spec = importlib.util.spec_from_file_location("bitnetd_client", CLIENT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(BITNETD)
        cls.mod = load_client()

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.close()
        assert rc == 0

    def client(self):
        c = self.mod.Client(self.d.socket)
        self.addCleanup(c.close)
        return c

    def test_call_and_stream(self):
        c = self.client()
        self.assertEqual(c.call("org.varlink.service.GetInfo")["vendor"], "bitnetd")
        replies = list(c.stream("io.bitnetd.Query.GetStatus"))
        self.assertEqual(len(replies), 1)
        self.assertEqual(replies[0]["jobs"], 0)
        with self.assertRaises(self.mod.VarlinkError) as e:
            c.call("io.bitnetd.Inference.Cancel", {"job": 3})
        self.assertEqual(e.exception.name, "io.bitnetd.Inference.JobNotFound")
        self.assertEqual(e.exception.parameters, {"job": 3})

    def test_command_line(self):
        env = dict(os.environ, BITNETD_SOCKET=self.d.socket)
        r = subprocess.run([sys.executable, CLIENT, "io.bitnetd.Query.ListKernels"], env=env,
                           capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 0, r.stderr)
        kernels = json.loads(r.stdout)["kernels"]
        self.assertIn("i2s_qk256.scalar", [k["id"] for k in kernels])
        r = subprocess.run([sys.executable, CLIENT, "--socket", self.d.socket,
                            "org.varlink.service.GetInterfaceDescription", '{"interface": 1}'],
                           capture_output=True, timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"org.varlink.service.InvalidParameter", r.stderr)
        r = subprocess.run([sys.executable, CLIENT, "--socket", self.d.dir + "/none.sock",
                            "org.varlink.service.GetInfo"], capture_output=True,
                           timeout=GUARD_SECONDS)
        self.assertEqual(r.returncode, 3)

    def test_interfaces_follow_the_grammar_and_match_the_method_table(self):
        c = self.client()
        names = c.call("org.varlink.service.GetInfo")["interfaces"]
        self.assertEqual(set(names), {"org.varlink.service", "io.bitnetd.Query",
                                      "io.bitnetd.Inference", "io.bitnetd.Admin"})
        for name in names:
            text = c.call("org.varlink.service.GetInterfaceDescription",
                          {"interface": name})["description"]
            iface = varlink_grammar.parse(text)
            self.assertEqual(iface["name"], name)
            for method, (inputs, _outputs) in iface["methods"].items():
                full = f"{name}.{method}"
                # Call without parameters: a method may want some, but it
                # must exist and be implemented.
                try:
                    c.call(full)
                except self.mod.VarlinkError as e:
                    self.assertNotIn(e.name, ("org.varlink.service.MethodNotFound",
                                              "org.varlink.service.MethodNotImplemented"), full)
                    if e.name == "org.varlink.service.InvalidParameter":
                        self.assertIn(e.parameters["parameter"], inputs, full)
            # A method not in the definition does not exist.
            with self.assertRaises(self.mod.VarlinkError) as e:
                c.call(f"{name}.NotInTheDefinition")
            self.assertEqual(e.exception.name, "org.varlink.service.MethodNotFound")

    def test_grammar_checker_rejects_bad_definitions(self):
        for bad in ("interface 1bad.name\nmethod A() -> ()",
                    "interface a.b\nmethod lower() -> ()",
                    "interface a.b\nmethod A(x) -> ()",
                    "interface a.b\ntype T (a: int, b)",
                    "interface a.b",
                    "interface a.b\nmethod A() -> ()\nmethod A() -> ()",
                    "interface a.b\nmethod A() ()"):
            with self.assertRaises(SyntaxError, msg=bad):
                varlink_grammar.parse(bad)
        ok = varlink_grammar.parse("# c\ninterface a.b\ntype T (a: ?[]string, b: [string]int,"
                                   " e: (x, y))\nmethod M(t: T) -> (o: object)\nerror E ()")
        self.assertEqual(ok["methods"]["M"], (["t"], ["o"]))


if __name__ == "__main__":
    BITNETD, CLIENT = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
