#!/usr/bin/env python3
"""Interoperability with an independent Varlink implementation: the Go
library github.com/varlink/go as Debian packages it
(golang-github-varlink-go-dev), built offline with Debian's golang-go.

The test builds tests/integration/go/varlink-interop against the packaged
source in /usr/share/gocode (GOPATH mode, GOPROXY=off: nothing is
downloaded; the build cache lives in the build directory), starts a real
bitnetd with a model from bitnet-mkmodel, and runs the program. It calls
GetInfo, io.bitnetd.Query.GetStatus, GetCapabilities and a streaming
io.bitnetd.Inference.Generate through the library's client, checks the
library's error values for four Varlink errors, and parses every interface
the daemon serves with the library's idl package (see parseIDL in main.go
for the one concession to the packaged version's age). This test then checks
what the program reports: the streamed text is the text bitnet-run
generates in-process for the token count that usage reports, and the
methods, errors and types the idl package found equal those the project's
own grammar checker (varlink_grammar.py) finds in protocol/*.varlink.

Exits 77 (skipped, with the reason printed) when go or the library is not
installed; scripts/deps.sh installs both.

Usage: test_go_interop.py BITNETD BITNET_MKMODEL BITNET_RUN PROTOCOL_DIR GO_SOURCE WORK_DIR
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import varlink_grammar  # noqa: E402
from fixture import GUARD_SECONDS, Daemon, tiny_model_dir  # noqa: E402

SKIP = 77
GOPATH = "/usr/share/gocode"  # where Debian's golang-*-dev packages put their source
LIBRARY = os.path.join(GOPATH, "src/github.com/varlink/go/varlink")
BITNETD = MKMODEL = BITNET_RUN = PROTOCOL = GO_SOURCE = WORK = None
PROGRAM = None


def go_environment():
    env = dict(os.environ)
    env.update({"GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": "", "GOPROXY": "off",
                "GOTOOLCHAIN": "local", "GOENV": "off", "CGO_ENABLED": "0",
                "GOCACHE": os.path.join(WORK, "cache")})
    return env


def build():
    """Builds the Go program; returns its path or raises with go's output."""
    out = os.path.join(WORK, "varlink-interop")
    r = subprocess.run(["go", "build", "-o", out, "."], cwd=GO_SOURCE, env=go_environment(),
                       capture_output=True, text=True, timeout=10 * GUARD_SECONDS)
    if r.returncode != 0:
        raise AssertionError(f"go build failed:\n{r.stdout}{r.stderr}")
    return out


class GoInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.model = tiny_model_dir(MKMODEL, "bitnetd-go-", 5)
        cls.d = Daemon(BITNETD, args=["--threads", "1", "--model", cls.model])

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0

    def run_program(self, prompt, n):
        r = subprocess.run([PROGRAM, "-socket", self.d.socket, "-protocol", PROTOCOL,
                            "-pid", str(self.d.proc.pid), "-prompt", prompt, "-n", str(n)],
                           capture_output=True, text=True, timeout=4 * GUARD_SECONDS)
        sys.stderr.write(r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def bitnet_run(self, prompt, n):
        out = subprocess.run([BITNET_RUN, "-m", self.model, "-p", prompt, "-n", str(n), "-t", "1"],
                             check=True, capture_output=True, timeout=GUARD_SECONDS).stdout
        self.assertTrue(out.startswith(prompt.encode()) and out.endswith(b"\n"))
        return out[len(prompt.encode()):-1].decode(errors="replace")

    def test_the_go_library_talks_to_bitnetd(self):
        for prompt, n in (("Hello world", 24), ("Ternary weights", 57)):
            result = self.run_program(prompt, n)
            gen = result["generate"]
            self.assertEqual(gen["model"], "tiny")
            self.assertEqual(gen["final"]["job"], gen["job"])
            self.assertEqual(gen["final"]["usage"]["generated_tokens"], n)
            self.assertEqual(gen["text"], self.bitnet_run(prompt, n))
            self.assertEqual(result["info"]["vendor"], "bitnetd")

    def test_the_idl_package_agrees_with_our_grammar(self):
        result = self.run_program("Hi", 2)
        files = {os.path.basename(f)[:-len(".varlink")]: f
                 for f in glob.glob(os.path.join(PROTOCOL, "*.varlink"))}
        self.assertEqual(set(result["interfaces"]), set(files))
        self.assertEqual(result["info"]["interfaces"][0], "org.varlink.service")
        for name, path in sorted(files.items()):
            with open(path) as f:
                ours = varlink_grammar.parse(f.read())
            theirs = result["interfaces"][name]
            self.assertEqual(ours["name"], name)
            self.assertEqual({m: [list(i), list(o)] for m, (i, o) in ours["methods"].items()},
                             theirs["methods"], name)
            self.assertEqual(ours["errors"], theirs["errors"], name)
            self.assertEqual({t: [k, f] for t, (k, f) in ours["types"].items()},
                             theirs["types"], name)
            self.assertGreater(len(theirs["methods"]), 0, name)
        # The only concession to an old idl package: lower-casing interface
        # names that have upper case in them, and nothing else.
        for name in result["idl_lowered_interface_names"]:
            self.assertNotEqual(name, name.lower())
        self.assertNotIn("org.varlink.service", result["idl_lowered_interface_names"])


def main():
    global BITNETD, MKMODEL, BITNET_RUN, PROTOCOL, GO_SOURCE, WORK, PROGRAM
    BITNETD, MKMODEL, BITNET_RUN, PROTOCOL, GO_SOURCE, WORK = (sys.argv.pop(1) for _ in range(6))
    if shutil.which("go") is None:
        print("SKIP: no go compiler (Debian package golang-go; scripts/deps.sh installs it)")
        return SKIP
    if not os.path.isdir(os.path.join(LIBRARY, "idl")):
        print(f"SKIP: the Go Varlink library is not in {LIBRARY} "
              "(Debian package golang-github-varlink-go-dev; scripts/deps.sh installs it)")
        return SKIP
    os.makedirs(WORK, exist_ok=True)
    PROGRAM = build()
    prog = unittest.main(verbosity=2, exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
