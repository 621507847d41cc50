#!/usr/bin/env python3
"""Faults against a real bitnetd: a client SIGKILLed mid-stream, a client
that stops reading, a flood of connections past max_connections, a model
file replaced on disk while loaded, ReloadLibrary to a missing path,
SIGTERM during a ReloadLibrary, a SIGHUP storm, and a log that cannot be
written (disk full).

After each fault the daemon must answer GetStatus, a companion client's
stream that ran through the fault must be intact (the greedy text the
same daemon gave for the same request before the fault: greedy results do
not depend on what else is batched), and nothing may leak: once the
fault's connections are gone, the daemon's file descriptors
(/proc/PID/fd) and threads (/proc/PID/task) are back to what they were
before, and its resident memory grew by less than LEAK_RSS_KIB. The daemon
creates its threads up front or on first use (the scheduler per model, the
compute pool, the worker of off-loop calls), so the "before" figures are
taken after a warm-up that used every call the fault uses.

Usage: test_faults.py BITNETD BITNET_MKMODEL VOCAB_DIR SHIM|none BITNET_LOAD|none
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Conn, Daemon  # noqa: E402

A = {}
M = {}
LONG = 4000  # tokens of a generation that outlives every step of a test
COMPANION_TOKENS = 48
LEAK_RSS_KIB = 32 * 1024  # allocator slack; a leak per call or job is far above it


def setUpModule():
    M["dir"] = tempfile.mkdtemp(prefix="bitnetd-faults-")
    os.chmod(M["dir"], 0o755)
    specs = {"tiny": ["--seed", "1", "--n-ctx", "4096"],
             "other": ["--seed", "9", "--n-ctx", "4096"],
             "slow": ["--seed", "2", "--n-ctx", "4096", "--n-layer", "8", "--n-embd", "1024",
                      "--n-ff", "2816"]}
    for name, extra in specs.items():
        path = os.path.join(M["dir"], name + ".gguf")
        mkmodel(path, ["--arch", "bitnet-b1.58", "--type", "i2s"] + extra)
        M[name] = path


def tearDownModule():
    shutil.rmtree(M["dir"], ignore_errors=True)


def mkmodel(path, args):
    subprocess.run([A["mkmodel"], "--preset", "tiny", "-o", path] + args, check=True,
                   capture_output=True)


def call(d, method, params=None):
    c = Conn(d.connect())
    try:
        return c.call(method, params)
    finally:
        c.close()


def ok(d, method, params=None):
    r = call(d, method, params)
    assert r is not None and "error" not in r, (method, r)
    return r["parameters"]


def poll(predicate, what="condition"):
    """Repeats predicate until it returns a true value; the guard only bounds a hang."""
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(what + " never became true")
        time.sleep(0.02)


def stream(conn, **params):
    """One streaming Generate on conn: (job, text, final parameters); raises
    when the stream breaks or ends with an error."""
    conn.send({"method": "io.bitnetd.Inference.Generate", "parameters": params, "more": True})
    first = conn.recv()
    if first is None or "error" in first:
        raise RuntimeError("Generate refused: %r" % (first,))
    text = ""
    while True:
        r = conn.recv()
        if r is None:
            raise RuntimeError("the daemon closed the stream")
        if "error" in r:
            raise RuntimeError("stream ended with %r" % (r,))
        p = r["parameters"]
        text += p.get("text", "")
        if not r.get("continues"):
            return first["parameters"]["job"], text, p


def sanitized():
    """True when the daemon runs under a tool whose allocator holds on to
    freed memory or maps shadow memory as it goes (ASan, TSan, valgrind)."""
    if "sanitized" not in M:
        with open(A["bitnetd"], "rb") as f:
            binary = f.read()
        M["sanitized"] = (b"__asan_init" in binary or b"__tsan_init" in binary
                          or bool(os.environ.get("BITNETD_TEST_WRAPPER")))
    return M["sanitized"]


def fd_targets(pid):
    """What each open file descriptor of a process refers to, sorted."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass  # closed meanwhile
    return sorted(out)


def figures(pid):
    """(file descriptors, threads, RSS KiB) of a process."""
    fds = len(os.listdir("/proc/%d/fd" % pid))
    threads = len(os.listdir("/proc/%d/task" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, threads, rss


class Companion:
    """A client that streams the same greedy generation again and again
    while a fault happens, and checks every stream against the text the
    daemon gave before the fault."""

    def __init__(self, d, model=None, prompt="The companion says", tokens=COMPANION_TOKENS):
        self.params = {"prompt": prompt, "max_tokens": tokens}
        if model:
            self.params["model"] = model
        c = Conn(d.connect())
        _, self.expected, fin = stream(c, **self.params)
        c.close()
        assert fin["finish_reason"] == "length", fin
        self.d = d
        self.failures = []
        self.streams = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def start(self):
        self.thread.start()
        # At least one stream is under way before the fault.
        poll(lambda: self.streams > 0 or self.failures, "a first companion stream")
        return self

    def run(self):
        c = None
        try:
            c = Conn(self.d.connect())
            while not self.stop_flag.is_set():
                _, text, fin = stream(c, **self.params)
                if fin["finish_reason"] != "length" or text != self.expected:
                    self.failures.append((fin, text))
                self.streams += 1
        except Exception as e:  # noqa: BLE001 - any failure is a broken stream
            self.failures.append(repr(e))
        finally:
            if c:
                c.close()

    def finish(self, test):
        """Lets the companion finish one more stream after the fault, then checks."""
        seen = self.streams
        poll(lambda: self.streams > seen + 1 or self.failures, "a companion stream after the fault")
        self.stop_flag.set()
        self.thread.join(GUARD_SECONDS)
        test.assertFalse(self.thread.is_alive())
        test.assertEqual(self.failures, [])
        test.assertGreater(self.streams, 1)


class Faults(unittest.TestCase):
    def daemon(self, models=("tiny",), config="", args=(), start=True):
        argv = ["--threads", "1"]
        for m in models:
            argv += ["--model", M[m]]
        d = Daemon(A["bitnetd"], config=config, args=argv + list(args), start=start)
        self.addCleanup(d.close)
        return d

    def warm_up(self, d, model=None):
        """Uses every kind of call once, so that threads created on first
        use exist before the "before" figures are taken."""
        extra = {"model": model} if model else {}
        ok(d, "io.bitnetd.Query.GetCapabilities")
        ok(d, "io.bitnetd.Inference.Tokenize", dict(text="warm up", **extra))
        c = Conn(d.connect())
        stream(c, prompt="warm up", max_tokens=4, **extra)
        c.close()
        self.settle(d)

    def settle(self, d):
        """Waits until only our own GetStatus connection is open and no job runs."""
        def quiet():
            st = ok(d, "io.bitnetd.Query.GetStatus")
            return st["connections"] == 1 and st["jobs"] == 0
        poll(quiet, "an idle daemon")

    def figures_idle(self, d):
        """The figures of an idle daemon: after settle(), the fewest file
        descriptors of a few readings (the GetStatus connection of settle()
        may still be open on the daemon's side for a moment)."""
        self.settle(d)
        readings = []
        for _ in range(5):
            readings.append(figures(d.proc.pid))
            time.sleep(0.05)
        before = min(readings)
        self.fds_before = fd_targets(d.proc.pid)
        return before

    def assert_no_leak(self, d, before):
        """The fault's connections and jobs are gone, and the figures are back."""
        self.settle(d)
        pid = d.proc.pid
        # Closing a connection is asynchronous to the client: allow the loop
        # a moment, bounded by the guard, to reach the figures of before.
        try:
            poll(lambda: figures(pid)[:2] == before[:2], "fds and threads as before")
        except AssertionError:
            pass
        after = figures(pid)
        print("  fds %d -> %d, threads %d -> %d, RSS %d -> %d KiB"
              % (before[0], after[0], before[1], after[1], before[2], after[2]))
        self.assertEqual(after[0], before[0], "file descriptors: %r before, %r after"
                         % (self.fds_before, fd_targets(pid)))
        self.assertEqual(after[1], before[1], "threads leaked")
        if sanitized():
            print("  (a sanitizer's allocator keeps freed memory: RSS not compared)")
        else:
            self.assertLess(after[2] - before[2], LEAK_RSS_KIB, "memory grew")

    def running_job(self, d, model):
        def find():
            for j in ok(d, "io.bitnetd.Query.ListJobs")["jobs"]:
                if j["model"] == model and j["tokens"] > 0:
                    return j
            return None
        return poll(find, "a decoding job of " + model)

    def wait_connections(self, d, n):
        """Waits until n connections are open, the GetStatus one included."""
        poll(lambda: ok(d, "io.bitnetd.Query.GetStatus")["connections"] == n,
             "%d open connections" % n)

    def test_client_sigkilled_mid_stream(self):
        d = self.daemon(models=("tiny", "slow"))
        self.warm_up(d)
        self.warm_up(d, "slow")
        before = self.figures_idle(d)
        companion = Companion(d).start()
        client = textwrap.dedent("""
            import json, socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            call = {"method": "io.bitnetd.Inference.Generate", "more": True,
                    "parameters": {"prompt": "Killed", "model": "slow",
                                   "max_tokens": int(sys.argv[2])}}
            s.sendall(json.dumps(call).encode() + b"\\0")
            buf = b""
            while buf.count(b"\\0") < 2:  # the job id, then text
                buf += s.recv(65536)
            print(json.loads(buf.split(b"\\0")[0])["parameters"]["job"], flush=True)
            while s.recv(65536):
                pass
            """)
        child = subprocess.Popen([sys.executable, "-c", client, d.socket, str(LONG)],
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        job = int(child.stdout.readline())
        self.assertIn(job, [j["id"] for j in ok(d, "io.bitnetd.Query.ListJobs")["jobs"]])
        child.kill()
        self.assertEqual(child.wait(), -signal.SIGKILL)
        # The job is cancelled, not run to its end.
        poll(lambda: job not in [j["id"] for j in ok(d, "io.bitnetd.Query.ListJobs")["jobs"]],
             "the killed client's job ended")
        done = [line for line in d.log_text().splitlines()
                if "event=job-done job=%d " % job in line]
        self.assertEqual(len(done), 1, done)
        self.assertIn("finish=cancelled", done[0])
        companion.finish(self)
        self.assert_no_leak(d, before)

    def test_client_that_stops_reading(self):
        d = self.daemon(models=("tiny", "other"), config="max_output_buffer = 4096\n")
        self.warm_up(d)
        self.warm_up(d, "other")
        before = self.figures_idle(d)
        companion = Companion(d).start()
        # A client asks for a long generation and never reads a byte; its
        # socket buffer is made small so that the daemon's buffer limit is
        # reached early.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(d.socket)
        stalled = Conn(s)
        stalled.send({"method": "io.bitnetd.Inference.Generate", "more": True,
                      "parameters": {"prompt": "Stalled", "model": "other", "max_tokens": LONG}})
        job = self.running_job(d, "other")
        # The stalled job keeps generating (it never waits for its reader)
        # while others are served.
        poll(lambda: any(j["id"] == job["id"] and j["tokens"] >= 300
                         for j in ok(d, "io.bitnetd.Query.ListJobs")["jobs"]),
             "the stalled job got past the buffer limit")
        c = Conn(d.connect())
        _, text, fin = stream(c, **companion.params)
        c.close()
        self.assertEqual(text, companion.expected)
        companion.finish(self)
        # The stalled client goes away without reading: its held text and
        # its job (running or finished) go with it.
        stalled.close()
        self.assert_no_leak(d, before)

    def test_connection_flood_beyond_max_connections(self):
        limit = 16
        d = self.daemon(config="max_connections = %d\nmax_connections_per_uid = %d\n"
                        % (limit, limit))
        self.warm_up(d)
        before = self.figures_idle(d)
        companion = Companion(d).start()
        self.wait_connections(d, 2)
        # Fill every slot but the companion's, then flood.
        held = []
        for _ in range(limit - 1):
            c = Conn(d.connect())
            self.assertIsNotNone(c.call("io.bitnetd.Query.GetStatus"))
            held.append(c)
        flood = []
        refused = 0
        for _ in range(200):
            try:
                c = Conn(d.connect())
            except OSError:
                refused += 1  # the listen backlog was full: refused by the kernel
                continue
            flood.append(c)
        for c in flood:
            try:
                c.send({"method": "io.bitnetd.Query.GetStatus"})
            except OSError:
                pass  # closed by the daemon before we wrote
            # Refused: closed without a reply.
            self.assertTrue(c.at_eof())
            c.close()
        print("  %d flood connections closed by the daemon, %d refused by the kernel"
              % (len(flood), refused))
        self.assertGreater(len(flood), 0)
        self.assertIn("event=connection-refused", d.log_text())
        # The held connections are still served.
        for c in held:
            self.assertEqual(c.call("io.bitnetd.Query.GetStatus")["parameters"]["connections"],
                             limit)
        for c in held:
            c.close()
        companion.finish(self)
        self.assert_no_leak(d, before)

    def test_model_file_replaced_on_disk(self):
        path = os.path.join(M["dir"], "replaced.gguf")
        shutil.copyfile(M["tiny"], path)
        d = self.daemon(models=(), args=["--model", path])
        self.warm_up(d)
        before = self.figures_idle(d)
        c = Conn(d.connect())
        _, text_before, _ = stream(c, prompt="Replace me", max_tokens=24)
        # A new model at the same path, the way package managers install
        # files (written beside it, then renamed over it).
        tmp = path + ".new"
        shutil.copyfile(M["other"], tmp)
        os.rename(tmp, path)
        _, text_after, _ = stream(c, prompt="Replace me", max_tokens=24)
        c.close()
        self.assertEqual(text_after, text_before)
        # The file did change: loaded anew, it generates something else.
        ok(d, "io.bitnetd.Admin.LoadModel", {"path": path, "name": "new"})
        c = Conn(d.connect())
        _, text_new, _ = stream(c, prompt="Replace me", max_tokens=24, model="new")
        _, text_old, _ = stream(c, prompt="Replace me", max_tokens=24, model="replaced")
        c.close()
        self.assertNotEqual(text_new, text_before)
        self.assertEqual(text_old, text_before)
        ok(d, "io.bitnetd.Admin.UnloadModel", {"name": "new"})
        self.assert_no_leak(d, before)

    def test_job_churn_under_bitnet_load(self):
        """Job churn from bench/bitnet-load loses no call.

        For a few seconds eight connections start short and long
        generations, cancel their own and hit QueueFull (a queue of two,
        retried at once) while others call GetCapabilities and Tokenize.
        Every call must get its final reply or a documented error
        (bitnet-load exits 1 otherwise). This is the load that found the
        scheduler reading jobs the loop had freed (daemon/scheduler.c,
        ev_flush_done())."""
        if A["load"] == "none":
            self.skipTest("bitnet-load (bench/load.c) was not built")
        d = self.daemon(models=("tiny", "other"),
                        config="n_seq_max = 4\nmax_queued_jobs = 2\nmax_jobs_per_uid = 64\n")
        self.warm_up(d)
        self.warm_up(d, "other")
        before = self.figures_idle(d)
        # The companion uses the other model: its job must not take a place
        # in the queue that bitnet-load checks QueueFull against.
        companion = Companion(d, model="other").start()
        r = subprocess.run([A["load"], "--socket", d.socket, "--model", "tiny",
                            "--generations", "8", "--connections", "12", "--seconds", "6",
                            "--long-tokens", "200", "--backoff", "0"],
                           capture_output=True, text=True,
                           timeout=4 * GUARD_SECONDS)
        report = r.stdout
        self.assertEqual(r.returncode, 0, report + r.stderr)
        self.assertIn("Every call got its final reply", report)
        self.assertIn("io.bitnetd.Inference.QueueFull", report)
        self.assertIsNone(d.proc.poll())
        companion.finish(self)
        self.assert_no_leak(d, before)

    # ---- backend libraries ----

    def llama_daemon(self):
        if A["shim"] == "none":
            self.skipTest("the llama shim (target bitnet_llama) was not built: "
                          "no llama.cpp tree was found")
        libs = os.path.join(M["dir"], "libs")
        os.makedirs(libs, mode=0o755, exist_ok=True)
        lib = os.path.join(libs, "libbitnet-llama.so")
        shutil.copyfile(A["shim"], lib + ".new")
        os.chmod(lib + ".new", 0o755)
        os.rename(lib + ".new", lib)
        model = os.path.join(M["dir"], "tq2.gguf")
        if not os.path.exists(model):
            mkmodel(model, ["--arch", "bitnet", "--type", "tq2_0", "--seed", "5", "--vocab",
                            os.path.join(A["vocab"], "ggml-vocab-llama-spm.gguf")])
        d = Daemon(A["bitnetd"], config="backends = llama=%s\nbackend_dirs = %s\n"
                   "preference = llama native\n" % (lib, libs),
                   args=["--model", model, "--threads", "1"])
        self.addCleanup(d.close)
        m = ok(d, "io.bitnetd.Query.ListModels")["models"][0]
        self.assertEqual(m["backend"], "llama")
        return d, libs

    def test_reload_library_to_missing_path(self):
        d, libs = self.llama_daemon()
        self.warm_up(d)
        missing = os.path.join(libs, "missing.so")
        ok(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama"})  # warm up the reload path
        self.settle(d)
        before = self.figures_idle(d)
        companion = Companion(d).start()
        for _ in range(5):
            r = call(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama", "path": missing})
            self.assertEqual(r["error"], "io.bitnetd.Admin.ReloadFailed", r)
            self.assertEqual(r["parameters"]["stage"], "validate")
            self.assertEqual(r["parameters"]["path"], missing)
            self.assertIn(missing, r["parameters"]["reason"])
        # The old generation serves on.
        m = ok(d, "io.bitnetd.Query.ListModels")["models"][0]
        self.assertEqual((m["backend"], m["generation"]), ("llama", 2))
        companion.finish(self)
        self.assert_no_leak(d, before)

    def test_sigterm_during_reload(self):
        d, _ = self.llama_daemon()
        self.warm_up(d)
        companion = Companion(d).start()
        # A reload is under way when a second one gets ReloadInProgress;
        # SIGTERM goes at once after that answer.
        for attempt in range(20):
            first = Conn(d.connect())
            first.send({"method": "io.bitnetd.Admin.ReloadLibrary",
                        "parameters": {"backend": "llama"}})
            r = call(d, "io.bitnetd.Admin.ReloadLibrary", {"backend": "llama"})
            if r.get("error") == "io.bitnetd.Admin.ReloadInProgress":
                d.proc.send_signal(signal.SIGTERM)
                break
            # Both done: the first succeeded, or (read after the second)
            # found the second in progress.
            reply = first.recv()
            self.assertIn(reply.get("error"), (None, "io.bitnetd.Admin.ReloadInProgress"), reply)
            first.close()
        else:
            self.skipTest("no reload was ever seen in progress (each took no time)")
        print("  SIGTERM during the reload of attempt %d" % (attempt + 1))
        d.expect("STOPPING=1")
        self.assertEqual(d.proc.wait(timeout=GUARD_SECONDS), 0)
        d.proc = None
        d.logfile.close()
        # The reload's caller got its answer or a closed connection, not a hang.
        r = first.recv()
        self.assertTrue(r is None or "parameters" in r or "error" in r, r)
        first.close()
        # The companion's stream in progress ended cleanly (the daemon lets
        # generations finish or cancels them with a final reply), or its next
        # call found the socket closed.
        companion.stop_flag.set()
        companion.thread.join(GUARD_SECONDS)
        broken = [f for f in companion.failures if "closed the stream" in str(f)]
        self.assertEqual(broken, [], companion.failures)
        log = d.log_text()
        self.assertIn("event=reload-requested", log)
        self.assertNotIn("AddressSanitizer", log)

    # ---- signals and logs ----

    def test_sighup_storm(self):
        config = "max_queued_jobs = 7\nmax_output_buffer = 65536\n"
        d = self.daemon(config=config)
        self.warm_up(d)
        # systemd reads the notification socket while the daemon reloads;
        # so does this thread (READY=1 / RELOADING=1 datagrams would fill it).
        notes = []
        reader_stop = threading.Event()

        def read_notes():
            d.notify.settimeout(0.2)
            while not reader_stop.is_set():
                try:
                    notes.append(d.notify.recv(4096).decode())
                except socket.timeout:
                    pass
            d.notify.settimeout(GUARD_SECONDS)

        reader = threading.Thread(target=read_notes)
        reader.start()
        self.addCleanup(reader.join)
        self.addCleanup(reader_stop.set)
        before = self.figures_idle(d)
        companions = [Companion(d, prompt="Companion %d" % i).start() for i in range(3)]
        for _ in range(100):
            os.kill(d.proc.pid, signal.SIGHUP)
        poll(lambda: d.log_text().count("event=reloaded") >= 1, "a reload")
        st = ok(d, "io.bitnetd.Query.GetStatus")
        self.assertEqual(st["limits"]["max_queued_jobs"], 7)
        self.assertEqual(st["limits"]["max_output_buffer"], 65536)
        for c in companions:
            c.finish(self)
        self.assertNotIn("event=reload-failed", d.log_text())
        # The configuration is still read and applied.
        d.write_config(config.replace("7", "9"))
        ok(d, "io.bitnetd.Admin.ReloadConfiguration")
        self.assertEqual(ok(d, "io.bitnetd.Query.GetStatus")["limits"]["max_queued_jobs"], 9)
        print("  reloads logged: %d, notifications read: %d"
              % (d.log_text().count("event=reloaded"), len(notes)))
        self.assertTrue(any("RELOADING=1" in n for n in notes))
        self.assert_no_leak(d, before)
        reader_stop.set()
        reader.join()

    def run_with_log(self, d, log):
        """Starts d with stdout and stderr going to the file object log."""
        d.logfile = log
        d.proc = subprocess.Popen(d.command(), env=d.environment(), stdout=log, stderr=log)
        d.expect("READY=1")

    def check_serving_without_log(self, d):
        self.warm_up(d)
        before = self.figures_idle(d)
        companion = Companion(d).start()
        # Calls that log: jobs, refusals, a failed load, a reload.
        for i in range(20):
            c = Conn(d.connect())
            _, text, fin = stream(c, prompt="Logged %d" % i, max_tokens=8)
            self.assertEqual(fin["finish_reason"], "length")
            c.close()
        r = call(d, "io.bitnetd.Admin.LoadModel", {"path": "/nonexistent/x.gguf"})
        self.assertEqual(r["error"], "io.bitnetd.Admin.ModelLoadFailed")
        ok(d, "io.bitnetd.Admin.ReloadConfiguration")
        companion.finish(self)
        self.assert_no_leak(d, before)
        self.assertEqual(d.stop(), 0)

    def test_log_to_full_device(self):
        d = self.daemon(start=False)
        self.run_with_log(d, open("/dev/full", "ab"))
        self.check_serving_without_log(d)

    def test_log_on_a_full_filesystem(self):
        mnt = tempfile.mkdtemp(prefix="bitnetd-tmpfs-")
        self.addCleanup(os.rmdir, mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (%s); /dev/full covers it"
                          % r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        # Fill it all but one page: the first lines go in, the rest do not.
        with open(os.path.join(mnt, "filler"), "wb") as f:
            try:
                f.write(b"x" * (60 * 1024))
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                pass
        log = open(os.path.join(mnt, "bitnetd.log"), "ab")
        d = self.daemon(start=False)
        self.run_with_log(d, log)
        self.check_serving_without_log(d)
        with open(os.path.join(mnt, "bitnetd.log"), "rb") as f:
            written = f.read()
        print("  %d bytes of log fitted" % len(written))
        self.assertLessEqual(len(written), 4096)


if __name__ == "__main__":
    keys = ["bitnetd", "mkmodel", "vocab", "shim", "load"]
    A.update(zip(keys, sys.argv[1:1 + len(keys)]))
    del sys.argv[1:1 + len(keys)]
    unittest.main(verbosity=2)
