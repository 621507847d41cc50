#!/usr/bin/env python3
"""A client that reads slower than bitnetd generates, against a real daemon
whose output buffer limit is small (max_output_buffer = 4096).

The slow client starts a long streaming Generate and reads nothing until the
job has finished. The kernel's socket buffer fills, then the daemon's own
buffer passes the limit, and from then on daemon/jobs.c holds the text back
(merged) instead of queueing replies; the final reply carries what is still
held. Meanwhile other connections are served: a companion generation that
streams to a normal reader the whole time, GetStatus, and a short generation
of a third client. Then the slow client reads everything: the text must be
complete and in order (equal to what bitnet-run generates in-process for the
token count that the final reply's usage reports), and the connection must
still take calls.

Why the companion: the daemon's scheduler merges consecutive text of one job
while the event loop is busy, so on a loaded machine a lone stalled job could
reach its end in fewer replies than the kernel buffers, and never reach the
limit. Text events of two jobs decoding together alternate, so each of the
stalled job's tokens is its own reply until the limit is reached (a few
hundred tokens into the generation) whatever the load.

Usage: test_slow_reader.py BITNETD BITNET_MKMODEL BITNET_RUN
"""
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Conn, Daemon, tiny_model_dir  # noqa: E402

BITNETD = MKMODEL = BITNET_RUN = None
OUTPUT_BUFFER = 4096  # the smallest max_output_buffer bitnetd accepts


def kernel_buffered_replies():
    """About how many small replies the kernel takes before a writer blocks:
    each write of a Unix stream socket costs its data plus about 576 bytes
    of bookkeeping against the writer's send buffer (wmem_default)."""
    try:
        with open("/proc/sys/net/core/wmem_default") as f:
            return int(f.read()) // 576
    except (OSError, ValueError):
        return 400


# Tokens generated while the slow client is stalled: three times what fills
# the kernel's buffer and the daemon's (about 370 + 90 replies here).
TOKENS = min(3400, max(1000, 3 * (kernel_buffered_replies() + OUTPUT_BUFFER // 40)))
COMPANION_TOKENS = TOKENS + 600  # the normal reader's generation outlives the stalled one


def poll(predicate):
    """Repeats predicate until it returns a true value; the guard only bounds a hang."""
    deadline = time.monotonic() + 4 * GUARD_SECONDS
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.05)


class SlowReader(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.model = tiny_model_dir(MKMODEL, "bitnetd-slow-", 4, "--n-ctx", "4096")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def bitnet_run(self, prompt, n):
        out = subprocess.run([BITNET_RUN, "-m", self.model, "-p", prompt, "-n", str(n), "-t", "1"],
                             check=True, capture_output=True, timeout=4 * GUARD_SECONDS).stdout
        self.assertTrue(out.startswith(prompt.encode()) and out.endswith(b"\n"))
        return out[len(prompt.encode()):-1].decode()

    def call(self, d, method, params=None):
        c = Conn(d.connect())
        try:
            r = c.call(method, params)
        finally:
            c.close()
        self.assertIsNotNone(r, method)
        self.assertNotIn("error", r)
        return r["parameters"]

    def read_stream(self, conn):
        """Reads one Generate stream: (first reply, text pieces, final parameters)."""
        first = conn.recv()
        self.assertIsNotNone(first, "the daemon closed the stream")
        self.assertNotIn("error", first)
        pieces = []
        while True:
            r = conn.recv()
            self.assertIsNotNone(r, "the daemon closed the stream")
            self.assertNotIn("error", r)
            if not r.get("continues"):
                return first, pieces, r["parameters"]
            self.assertEqual(list(r["parameters"]), ["text"])
            pieces.append(r["parameters"]["text"])

    def start_generate(self, d, prompt, n):
        c = Conn(d.connect())
        self.addCleanup(c.close)
        c.send({"method": "io.bitnetd.Inference.Generate",
                "parameters": {"prompt": prompt, "max_tokens": n}, "more": True})
        return c

    def test_stalled_reader_loses_nothing_and_blocks_nobody(self):
        d = Daemon(BITNETD, config=f"max_output_buffer = {OUTPUT_BUFFER}\n",
                   args=["--threads", "1", "--model", self.model])
        self.addCleanup(d.close)
        self.assertEqual(self.call(d, "io.bitnetd.Query.GetStatus")["limits"]["max_output_buffer"],
                         OUTPUT_BUFFER)

        # The companion: a normal reader, read by a thread the whole time.
        companion = self.start_generate(d, "Count", COMPANION_TOKENS)
        got = {}
        first = companion.recv()
        self.assertEqual(list(first["parameters"]), ["job", "model"])
        reader = threading.Thread(
            target=lambda: got.update(stream=self.read_stream_rest(companion)))
        reader.start()
        self.addCleanup(reader.join, 4 * GUARD_SECONDS)
        poll(lambda: any(j["tokens"] > 0
                         for j in self.call(d, "io.bitnetd.Query.ListJobs")["jobs"]))

        slow = self.start_generate(d, "Count", TOKENS)

        # While the slow client reads nothing, its job runs and others are served.
        def slow_job():
            jobs = self.call(d, "io.bitnetd.Query.ListJobs")["jobs"]
            return next((j for j in jobs if j["id"] != first["parameters"]["job"]), None)
        job = poll(slow_job)
        status = self.call(d, "io.bitnetd.Query.GetStatus")
        self.assertGreaterEqual(status["connections"], 3)
        _, pieces, final = self.read_stream(self.start_generate(d, "Hi", 8))
        self.assertEqual(final["finish_reason"], "length")
        self.assertEqual("".join(pieces), self.bitnet_run("Hi", 8))

        # The job finishes although its client still reads nothing, and the
        # daemon still answers.
        poll(lambda: not any(j["id"] == job["id"]
                             for j in self.call(d, "io.bitnetd.Query.ListJobs")["jobs"]))
        status = self.call(d, "io.bitnetd.Query.GetStatus")
        self.assertGreaterEqual(status["connections"], 3)

        # Then the slow client reads it all, in order.
        head, pieces, final = self.read_stream(slow)
        self.assertEqual(head, {"parameters": {"job": job["id"], "model": "tiny"},
                                "continues": True})
        self.assertEqual(final["job"], job["id"])
        self.assertEqual(final["finish_reason"], "length")
        generated = final["usage"]["generated_tokens"]
        self.assertEqual(generated, TOKENS)
        # Text still held back when the job ended comes with the final reply:
        # proof that the held-text path ran (the connection was over its limit).
        self.assertIn("text", final, "the stalled connection never reached max_output_buffer")
        self.assertGreater(len(final["text"]), 0)
        self.assertLess(len(pieces) + 1, generated)  # held text went out merged
        received = "".join(pieces) + final["text"]
        self.assertEqual(received, self.bitnet_run("Count", generated))

        # The connection that was over its limit takes calls again.
        r = slow.call("io.bitnetd.Query.GetStatus")
        self.assertEqual(r["parameters"]["limits"]["max_output_buffer"], OUTPUT_BUFFER)

        # The companion's stream was intact.
        reader.join(4 * GUARD_SECONDS)
        pieces, final = got["stream"]
        self.assertNotIn("broken", final)
        self.assertEqual(final["finish_reason"], "length")
        self.assertEqual(final["usage"]["generated_tokens"], COMPANION_TOKENS)
        self.assertEqual("".join(pieces) + final.get("text", ""),
                         self.bitnet_run("Count", COMPANION_TOKENS))
        self.assertEqual(d.stop(), 0)

    def read_stream_rest(self, conn):
        """The rest of a stream whose first reply was read: (pieces, final)."""
        pieces = []
        while True:
            r = conn.recv()
            if r is None or "error" in r:
                return pieces, {"broken": repr(r)}
            if not r.get("continues"):
                return pieces, r["parameters"]
            pieces.append(r["parameters"]["text"])


if __name__ == "__main__":
    BITNETD, MKMODEL, BITNET_RUN = (sys.argv.pop(1) for _ in range(3))
    unittest.main(verbosity=2)
