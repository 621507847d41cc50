#!/usr/bin/env python3
"""Backends at run time, against a real bitnetd: the preference list and
its skip reasons, loud fallback, strict mode, per-request selection,
SetPreference switches, the CUDA library on a machine without a GPU, and
ReloadLibrary of the real llama shim (over the real libllama) while eight
clients stream generations: 50 reloads, some failing validation, with
every stream intact, the version changing when a new file replaces the
old one at the same path, and file descriptors and memory measured.

A library that crashes inside bitnet_eval (a shim built to raise SIGSEGV
on a chosen token) kills only its runner process: the daemon, its other
models and their streams go on, the jobs in that library end with an error
naming the signal, and a ReloadLibrary brings the model back.

Usage: test_backends_runtime.py BITNETD BITNETCTL MKMODEL VOCAB_DIR SHIM SHIM_ALT
                                SHIM_CUDA|none CUDA_LIB|none NOEVAL_LIB SHIM_CRASH
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import Conn, Daemon  # noqa: E402

A = {}
M = {}
RELOADS = 50
CLIENTS = 8


def setUpModule():
    M["dir"] = tempfile.mkdtemp(prefix="bitnetd-be-")
    os.chmod(M["dir"], 0o755)
    vocab = os.path.join(A["vocab"], "ggml-vocab-llama-spm.gguf")
    for name, typ in (("tq2", "tq2_0"), ("i2s", "i2s")):
        path = os.path.join(M["dir"], name + ".gguf")
        subprocess.run([A["mkmodel"], "--arch", "bitnet", "--preset", "tiny", "--type", typ,
                        "--seed", "5", "--vocab", vocab, "-o", path],
                       check=True, capture_output=True)
        M[name] = path


def tearDownModule():
    shutil.rmtree(M["dir"], ignore_errors=True)


def call(d, method, params=None):
    c = Conn(d.connect())
    try:
        return c.call(method, params or {})
    finally:
        c.close()


def model(d, name):
    r = call(d, "io.bitnetd.Query.ListModels")
    return next(m for m in r["parameters"]["models"] if m["name"] == name)


def generate(conn, **params):
    """One streaming Generate; returns (text, final reply parameters) or raises."""
    conn.send({"method": "io.bitnetd.Inference.Generate", "parameters": params, "more": True})
    text = ""
    while True:
        r = conn.recv()
        if r is None:
            raise RuntimeError("connection closed mid-stream")
        if "error" in r:
            return None, r
        p = r.get("parameters", {})
        text += p.get("text", "")
        if not r.get("continues"):
            return text, p


def registry_reason(kernel, env):
    out = subprocess.run([A["bitnetctl"], "kernels", "--json"], check=True, capture_output=True,
                         text=True, env=dict(os.environ, **env)).stdout
    return next(k for k in json.loads(out) if k["id"] == kernel)["reason"]


def has_avx512():
    out = subprocess.run([A["bitnetctl"], "kernels", "--json"], check=True, capture_output=True,
                         text=True).stdout
    return next(k for k in json.loads(out) if k["id"] == "tq2_0.avx512")["available"]


class Preference(unittest.TestCase):
    """Selection, fallback and strict mode on the native kernels."""

    def setUp(self):
        if not has_avx512():
            self.skipTest("needs an AVX-512 machine to lower with BITNET_SIMD=avx2")
        self.env = {"BITNET_SIMD": "avx2"}
        self.d = Daemon(A["bitnetd"], config="preference = tq2_0.avx512 tq2_0.avx2 native\n",
                        args=["--model", M["tq2"], "--threads", "1"], env=self.env)

    def tearDown(self):
        self.d.stop()
        self.d.close()

    def test_fallback_is_loud_and_exact(self):
        m = model(self.d, "tq2")
        self.assertEqual(m["kernel"], "tq2_0.avx2")
        self.assertEqual(m["requested"], "tq2_0.avx512")
        self.assertTrue(m["fallback"])
        # The rest of the engine follows the lowered SIMD level too.
        self.assertEqual(m["attention"], "avx2")
        self.assertEqual(m["kv_cache"], "f32")
        self.assertRegex(m["lm_head"], r"^f16 .*fmat\.avx2")
        first = m["preference"][0]
        self.assertEqual(first["id"], "tq2_0.avx512")
        self.assertEqual(first["state"], "skipped")
        self.assertEqual(first["reason"], registry_reason("tq2_0.avx512", self.env))
        self.assertEqual(m["preference"][1], {"id": "tq2_0.avx2", "state": "active"})
        self.assertEqual(m["preference"][2]["state"], "untried")
        st = call(self.d, "io.bitnetd.Query.GetStatus")["parameters"]
        self.assertIn("FALLBACK from tq2_0.avx512", st["status"])
        log = self.d.log_text()
        self.assertIn("event=fallback model=tq2 requested=tq2_0.avx512 active=tq2_0.avx2", log)
        caps = call(self.d, "io.bitnetd.Query.GetCapabilities")["parameters"]
        pref = caps["preference"]
        self.assertEqual(pref["source"], "configuration")
        self.assertEqual([e["id"] for e in pref["entries"]],
                         ["tq2_0.avx512", "tq2_0.avx2", "native"])
        self.assertEqual(pref["entries"][0]["state"], "unavailable")
        sel = [k["id"] for k in caps["kernels"] if k.get("selected")]
        self.assertEqual(sel, ["tq2_0.avx2"])
        self.assertEqual(caps["selected"][0]["kernel"], "tq2_0.avx2")

    def test_strict_load_fails_with_the_reason(self):
        r = call(self.d, "io.bitnetd.Admin.LoadModel",
                 {"path": M["tq2"], "name": "strict", "strict": True})
        self.assertEqual(r["error"], "io.bitnetd.Admin.ModelLoadFailed")
        reason = r["parameters"]["reason"]
        self.assertIn("strict mode", reason)
        self.assertIn(registry_reason("tq2_0.avx512", self.env), reason)
        # The daemon serves on, and the failed model is not listed.
        names = [m["name"] for m in call(self.d, "io.bitnetd.Query.ListModels")
                 ["parameters"]["models"]]
        self.assertEqual(names, ["tq2"])

    def test_model_preference_of_another_format(self):
        r = call(self.d, "io.bitnetd.Admin.LoadModel",
                 {"path": M["tq2"], "name": "x", "preference": ["i2s_qk256.avx2"]})
        self.assertEqual(r["error"], "io.bitnetd.Admin.ModelLoadFailed")
        self.assertIn("no entry of the preference list applies to tq2_0", r["parameters"]["reason"])
        r = call(self.d, "io.bitnetd.Admin.LoadModel",
                 {"path": M["tq2"], "name": "x", "preference": ["no.such"]})
        self.assertEqual(r["error"], "io.bitnetd.Admin.PreferenceInvalid")

    def test_per_request_selection(self):
        c = Conn(self.d.connect())
        text, p = generate(c, prompt="Hello", max_tokens=3, kernel="tq2_0.avx512", strict=True)
        self.assertIsNone(text)
        self.assertEqual(p["error"], "io.bitnetd.Inference.BackendMismatch")
        self.assertEqual(p["parameters"]["active"], "tq2_0.avx2")
        text, p = generate(c, prompt="Hello", max_tokens=3, kernel="tq2_0.avx512")
        self.assertEqual(p["kernel"], "tq2_0.avx2")
        self.assertIn("asked for backend (any) kernel tq2_0.avx512", p["fallback"])
        text, p = generate(c, prompt="Hello", max_tokens=3, kernel="tq2_0.avx2", strict=True)
        self.assertNotIn("fallback", p)
        c.close()

    def test_set_preference_switches_and_strict_refuses(self):
        c = Conn(self.d.connect())
        before, p = generate(c, prompt="The quick brown fox", max_tokens=8)
        self.assertEqual((p["kernel"], p["generation"]), ("tq2_0.avx2", 1))
        r = call(self.d, "io.bitnetd.Admin.SetPreference", {"preference": ["bogus"]})
        self.assertEqual(r["error"], "io.bitnetd.Admin.PreferenceInvalid")
        r = call(self.d, "io.bitnetd.Admin.SetPreference", {"preference": ["tq2_0.scalar"]})
        sw = r["parameters"]["models"][0]
        self.assertEqual((sw["name"], sw["switched"], sw["kernel"], sw["generation"]),
                         ("tq2", True, "tq2_0.scalar", 2))
        self.assertTrue(sw["self_check"]["compared"])
        self.assertTrue(sw["self_check"]["match"], sw["self_check"])
        after, p = generate(c, prompt="The quick brown fox", max_tokens=8)
        self.assertEqual((p["kernel"], p["generation"]), ("tq2_0.scalar", 2))
        self.assertEqual(after, before)  # same model, an exact integer kernel
        # Strict: the first entry cannot run here, so nothing switches and
        # the old list stays.
        r = call(self.d, "io.bitnetd.Admin.SetPreference",
                 {"preference": ["tq2_0.avx512", "tq2_0.avx2"], "strict": True})
        self.assertEqual(r["error"], "io.bitnetd.Admin.FallbackRefused")
        self.assertIn(registry_reason("tq2_0.avx512", self.env), r["parameters"]["reason"])
        self.assertEqual(model(self.d, "tq2")["kernel"], "tq2_0.scalar")
        caps = call(self.d, "io.bitnetd.Query.GetCapabilities")["parameters"]
        self.assertEqual([e["id"] for e in caps["preference"]["entries"]], ["tq2_0.scalar"])
        self.assertFalse(caps["preference"]["strict"])
        c.close()


class Cuda(unittest.TestCase):
    """CUDA libraries on this machine: refused or skipped, with the driver's
    words in the reason, and the model served on the CPU."""

    def test_cuda_libraries_fall_back(self):
        libs = []
        if A["shim_cuda"] != "none":
            libs.append("llama.cuda=" + A["shim_cuda"])
        if A["cuda_lib"] != "none":
            libs.append("cuda=" + A["cuda_lib"])
        if not libs:
            self.skipTest("neither the CUDA llama shim nor libbitnet-cuda.so was built")
        if os.path.exists("/dev/nvidia0"):
            self.skipTest("this machine has a GPU: the no-driver path cannot be shown")
        dirs = ":".join(sorted({os.path.dirname(x.split("=", 1)[1]) for x in libs}))
        d = Daemon(A["bitnetd"], config="backends = %s\nbackend_dirs = %s\n"
                   "preference = llama.cuda i2s_qk256.cuda native\n" % (",".join(libs), dirs),
                   args=["--threads", "1"])
        try:
            caps = call(d, "io.bitnetd.Query.GetCapabilities")["parameters"]
            backends = {b["id"]: b for b in caps["backends"]}
            if "llama.cuda" in backends:
                b = backends["llama.cuda"]
                self.assertEqual(b["state"], "refused")
                self.assertIn("libcuda.so", b["reason"])
                self.assertTrue(b["analysis"]["cuda"]["inference"])
            if "cuda" in backends:
                libs = {x["backend"]: x["detail"] for x in caps["cuda"]["libraries"]}
                self.assertIn("no CUDA driver: libcuda.so.1 not found", libs["cuda"])
            r = call(d, "io.bitnetd.Admin.LoadModel", {"path": M["i2s"], "name": "m"})
            m = r["parameters"]["model"]
            self.assertEqual((m["backend"], m["fallback"]), ("native", True))
            reasons = {e["id"]: e.get("reason", "") for e in m["preference"]}
            if "llama.cuda" in backends:
                self.assertIn("libcuda.so", reasons["llama.cuda"])
            if "cuda" in backends:
                self.assertTrue(reasons["i2s_qk256.cuda"], reasons)
            self.assertEqual(m["preference"][-1]["state"], "active")
        finally:
            d.stop()
            d.close()
        # The CUDA build named as a CPU library: its symbols say CUDA.
        if A["shim_cuda"] != "none":
            d = Daemon(A["bitnetd"], config="backends = llama.cpu=%s\nbackend_dirs = %s\n" % (
                A["shim_cuda"], os.path.dirname(A["shim_cuda"])), args=["--threads", "1"])
            try:
                caps = call(d, "io.bitnetd.Query.GetCapabilities")["parameters"]
                b = {b["id"]: b for b in caps["backends"]}["llama.cpu"]
                self.assertEqual(b["state"], "refused")
                self.assertIn("configured as llama.cpu (CPU) but its symbols say CUDA", b["reason"])
            finally:
                d.stop()
                d.close()

    def test_cpu_library_named_cuda_is_a_mismatch(self):
        """The reverse: the CPU build of the shim configured as a CUDA backend."""
        d = Daemon(A["bitnetd"], config="backends = llama.cuda=%s\nbackend_dirs = %s\n" % (
            A["shim"], os.path.dirname(A["shim"])), args=["--threads", "1"])
        try:
            caps = call(d, "io.bitnetd.Query.GetCapabilities")["parameters"]
            b = {b["id"]: b for b in caps["backends"]}["llama.cuda"]
            self.assertEqual(b["state"], "refused")
            self.assertIn("configured as llama.cuda (CUDA) but its symbols say CPU only",
                          b["reason"])
        finally:
            d.stop()
            d.close()


def install(src, dst):
    """Replaces dst with a copy of src the way package managers do (rename)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, dst)


def proc_figures(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, rss


class Reload(unittest.TestCase):
    def test_reload_under_load(self):
        libs = os.path.join(M["dir"], "libs")
        os.makedirs(libs, mode=0o755, exist_ok=True)
        lib = os.path.join(libs, "libbitnet-llama.so")
        install(A["shim"], lib)
        bad = os.path.join(libs, "bad.so")
        with open(bad, "w") as f:
            f.write("not an ELF file\n")
        noeval = os.path.join(libs, "noeval.so")
        install(A["noeval"], noeval)
        d = Daemon(A["bitnetd"], config="backends = llama=%s\nbackend_dirs = %s\n"
                   "preference = llama native\nn_seq_max = %d\n" % (lib, libs, CLIENTS),
                   args=["--model", M["tq2"], "--threads", "1"])
        try:
            self.run_storm(d, lib, bad, noeval)
        except BaseException:
            print("daemon exit status: %s; log, last lines:\n%s" % (
                d.proc.poll(), "\n".join(d.log_text().splitlines()[-60:])))
            raise
        finally:
            d.stop()
            d.close()

    def run_storm(self, d, lib, bad, noeval):
        m = model(d, "tq2")
        self.assertEqual((m["backend"], m["generation"]), ("llama", 1))
        prompts = ["Prompt number %d says" % i for i in range(CLIENTS)]
        expected = {}
        c = Conn(d.connect())
        for p in prompts:
            expected[p], fin = generate(c, prompt=p, max_tokens=12)
            self.assertEqual(fin["backend"], "llama")
        c.close()

        stop = threading.Event()
        failures = []
        counts = [0] * CLIENTS
        generations = set()

        def client(i):
            try:
                conn = Conn(d.connect())
                while not stop.is_set():
                    text, fin = generate(conn, prompt=prompts[i], max_tokens=12)
                    if text is None or fin.get("finish_reason") != "length":
                        failures.append((i, fin))
                    elif text != expected[prompts[i]]:
                        failures.append((i, "text %r != %r" % (text, expected[prompts[i]])))
                    else:
                        generations.add(fin["generation"])
                    counts[i] += 1
                conn.close()
            except Exception as e:  # noqa: BLE001 - any failure is a failed stream
                failures.append((i, repr(e)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        versions = []
        figures = {}
        ok = failed = 0
        try:
            for n in range(1, RELOADS + 1):
                if n % 10 == 3:
                    r = call(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama", "path": bad})
                    self.assertEqual(r["error"], "io.bitnetd.Admin.ReloadFailed", r)
                    self.assertEqual(r["parameters"]["stage"], "validate")
                    failed += 1
                elif n % 10 == 7:
                    r = call(d, "io.bitnetd.Admin.ReloadLibrary",
                             {"backend": "llama", "path": noeval})
                    self.assertEqual(r["error"], "io.bitnetd.Admin.ReloadFailed", r)
                    self.assertIn("bitnet_eval", r["parameters"]["reason"])
                    failed += 1
                else:
                    # A new file at the same path each time, alternating versions.
                    install(A["shim_alt"] if ok % 2 == 0 else A["shim"], lib)
                    r = call(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama"})
                    self.assertNotIn("error", r, r)
                    p = r["parameters"]
                    versions.append(p["backend"]["version"])
                    sw = p["models"][0]
                    self.assertTrue(sw["switched"])
                    self.assertTrue(sw["self_check"]["match"], sw["self_check"])
                    ok += 1
                if n in (10, RELOADS):
                    figures[n] = proc_figures(d.proc.pid)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        self.assertTrue(all(c > 0 for c in counts), counts)
        # The version reported follows the file installed at the same path.
        base = versions[1]
        self.assertTrue(versions[0].endswith("+alt"), versions[:3])
        self.assertFalse(base.endswith("+alt"))
        self.assertEqual(versions, [base + "+alt" if i % 2 == 0 else base
                                    for i in range(len(versions))])
        self.assertGreater(len(generations), 1)
        m = model(d, "tq2")
        self.assertEqual(m["generation"], ok + 1)
        self.assertIn("backend=llama generation=", d.log_text())
        fd10, rss10 = figures[10]
        fd50, rss50 = figures[RELOADS]
        print("reloads: %d ok, %d refused; streams: %d; fds after 10 reloads %d, after %d: %d; "
              "RSS %d KiB -> %d KiB" % (ok, failed, sum(counts), fd10, RELOADS, fd50, rss10,
                                        rss50))
        self.assertLessEqual(fd50, fd10 + 2)
        self.assertLess(rss50 - rss10, 128 * 1024)
        # The same through bitnetctl.
        ctl = [A["bitnetctl"], "--socket", d.socket]
        out = subprocess.run(ctl + ["reload", "llama"], check=True, capture_output=True,
                             text=True).stdout
        self.assertIn("reloaded llama: %s" % lib, out)
        self.assertIn("tq2 -> llama, kernel llama.cpu, generation %d; self-check: match" %
                      (ok + 2), out)
        out = subprocess.run(ctl + ["prefer", "native"], check=True, capture_output=True,
                             text=True).stdout
        self.assertIn("preference (SetPreference): native", out)
        self.assertIn("tq2 -> native", out)
        out = subprocess.run(ctl + ["backends"], check=True, capture_output=True,
                             text=True).stdout
        self.assertRegex(out, r"llama +%s" % lib)
        self.assertIn("Preference (first usable entry wins)", out)
        self.assertRegex(out, r"tq2 +native")
        r = subprocess.run(ctl + ["reload", "nosuch"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("io.bitnetd.Admin.BackendNotFound", r.stderr)


class Crash(unittest.TestCase):
    def test_crash_in_eval_is_contained(self):
        # The token that will crash the library: the last one of " zebra".
        d = Daemon(A["bitnetd"], args=["--model", M["tq2"], "--threads", "1"])
        try:
            r = call(d, "io.bitnetd.Inference.Tokenize", {"text": " zebra", "add_special": False})
            crash_token = r["parameters"]["tokens"][-1]
        finally:
            d.stop()
            d.close()
        libs = os.path.join(M["dir"], "crashlibs")
        os.makedirs(libs, mode=0o755, exist_ok=True)
        lib = os.path.join(libs, "libbitnet-llama.so")
        install(A["shim_crash"], lib)
        d = Daemon(A["bitnetd"], config="backends = llama=%s\nbackend_dirs = %s\n" % (lib, libs),
                   args=["--threads", "1"], env={"BITNET_SHIM_CRASH_TOKEN": str(crash_token)})
        try:
            r = call(d, "io.bitnetd.Admin.LoadModel",
                     {"path": M["tq2"], "name": "ext", "preference": ["llama"]})
            self.assertEqual(r["parameters"]["model"]["backend"], "llama", r)
            r = call(d, "io.bitnetd.Admin.LoadModel",
                     {"path": M["i2s"], "name": "own", "preference": ["native"]})
            self.assertEqual(r["parameters"]["model"]["backend"], "native", r)
            pid = d.proc.pid
            before = proc_figures(pid)[0]
            # A native stream runs across the crash and must be intact.
            c_own = Conn(d.connect())
            ref, _ = generate(c_own, model="own", prompt="Steady", max_tokens=40)
            c_own.send({"method": "io.bitnetd.Inference.Generate", "more": True,
                        "parameters": {"model": "own", "prompt": "Steady", "max_tokens": 40}})
            c_ext = Conn(d.connect())
            text, fin = generate(c_ext, model="ext", prompt="Hello", max_tokens=4)
            self.assertEqual(fin["finish_reason"], "length")
            text, fin = generate(c_ext, model="ext", prompt="A zebra", max_tokens=4)
            self.assertEqual(fin["finish_reason"], "error", fin)
            self.assertIn("died during bitnet_eval: signal 11", fin["error"])
            # The daemon and its native model serve on.
            own_text = ""
            while True:
                r = c_own.recv()
                p = r["parameters"]
                own_text += p.get("text", "")
                if not r.get("continues"):
                    break
            self.assertEqual((p["finish_reason"], own_text), ("length", ref))
            st = call(d, "io.bitnetd.Query.GetStatus")["parameters"]
            self.assertEqual(st["pid"], pid)
            # The broken generation says so until the library is reloaded.
            text, fin = generate(c_ext, model="ext", prompt="Hello", max_tokens=4)
            self.assertEqual(fin["finish_reason"], "error")
            self.assertIn("backend process", fin["error"])
            r = call(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama"})
            self.assertNotIn("error", r, r)
            text, fin = generate(c_ext, model="ext", prompt="Hello", max_tokens=4)
            self.assertEqual(fin["finish_reason"], "length", fin)
            self.assertEqual(fin["generation"], 2)
            c_own.close()
            c_ext.close()
            # The closed connections go once the daemon's loop sees them.
            deadline = time.monotonic() + 30  # generous: sanitizers slow the loop
            while proc_figures(pid)[0] > before and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertLessEqual(proc_figures(pid)[0], before)
        finally:
            d.stop()
            d.close()


if __name__ == "__main__":
    keys = ["bitnetd", "bitnetctl", "mkmodel", "vocab", "shim", "shim_alt", "shim_cuda",
            "cuda_lib", "noeval", "shim_crash"]
    A.update(zip(keys, sys.argv[1:1 + len(keys)]))
    del sys.argv[1:1 + len(keys)]
    unittest.main(verbosity=2)
