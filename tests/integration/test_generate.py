#!/usr/bin/env python3
"""Generation through a real bitnetd: streaming, equality with bitnet-run,
cancellation, disconnects, the queue limit, concurrent batching, chat,
Tokenize/Detokenize, LoadModel/UnloadModel, SIGTERM, and the bitnetctl
commands that drive them.

Models are written by bitnet-mkmodel into a temporary directory: "tiny"
(fast, for exact comparisons) and "slow" (a larger random model with a
4096 context, so a 4000-token generation is still running when the test
acts on it; every such job is cancelled by the test, never waited out).

Usage: test_generate.py BITNETD BITNETCTL BITNET_RUN BITNET_MKMODEL
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import GUARD_SECONDS, Conn, Daemon  # noqa: E402

BITNETD = BITNETCTL = BITNET_RUN = MKMODEL = None
MODELS = {}
LONG = 4000  # tokens of a generation that outlives every test step


def setUpModule():
    MODELS["dir"] = tempfile.mkdtemp(prefix="bitnetd-gen-")
    os.chmod(MODELS["dir"], 0o755)
    specs = {"tiny": ["--seed", "1"],
             "slow": ["--seed", "2", "--n-ctx", "4096", "--n-layer", "8", "--n-embd", "1024",
                      "--n-ff", "2816"]}
    for name, extra in specs.items():
        path = os.path.join(MODELS["dir"], name + ".gguf")
        subprocess.run([MKMODEL, "--arch", "bitnet-b1.58", "--preset", "tiny", "--type", "i2s",
                        "-o", path] + extra, check=True, capture_output=True)
        MODELS[name] = path


def tearDownModule():
    shutil.rmtree(MODELS["dir"], ignore_errors=True)


def generate(conn, **params):
    """Sends Generate with more; returns the first reply (the job id)."""
    conn.send({"method": "io.bitnetd.Inference.Generate", "parameters": params, "more": True})
    return conn.recv()


def finish(conn):
    """Reads replies to the end of a stream; returns (text, final parameters)."""
    text = ""
    while True:
        r = conn.recv()
        assert r is not None, "the daemon closed the stream"
        assert "error" not in r, r
        p = r["parameters"]
        text += p.get("text", "")
        if not r.get("continues"):
            return text, p


def wait_for_text(conn):
    """Reads until the first text reply (the job is then decoding)."""
    while True:
        r = conn.recv()
        assert r is not None and r.get("continues"), r
        if r["parameters"].get("text"):
            return r["parameters"]["text"]


def call(d, method, params=None):
    c = Conn(d.connect())
    try:
        return c.call(method, params)
    finally:
        c.close()


def jobs(d):
    return call(d, "io.bitnetd.Query.ListJobs")["parameters"]["jobs"]


def reload(d, config):
    """Rewrites the config file and reloads it through the Admin interface."""
    d.write_config(config)
    # Empty the notification queue, which STATUS= updates filled: the
    # reload's RELOADING=1 and READY=1 then go through at once.
    d.notify.settimeout(0)
    try:
        while True:
            d.notify.recv(4096)
    except BlockingIOError:
        pass
    d.notify.settimeout(GUARD_SECONDS)
    return call(d, "io.bitnetd.Admin.ReloadConfiguration")


def poll(predicate):
    """Repeats predicate until true; the guard only bounds a hang."""
    deadline = time.monotonic() + GUARD_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.02)


def bitnet_run(model, prompt, n, chat=False, system=None):
    """bitnet-run's greedy text for prompt: its stdout is prompt + text + newline."""
    cmd = [BITNET_RUN, "-m", model, "-p", prompt, "-n", str(n), "-t", "1"]
    if chat:
        cmd.append("--chat")
    if system:
        cmd += ["--system", system]
    out = subprocess.run(cmd, check=True, capture_output=True, timeout=GUARD_SECONDS).stdout
    assert out.startswith(prompt.encode()) and out.endswith(b"\n"), out
    return out[len(prompt.encode()):-1].decode()


class Generate(unittest.TestCase):
    def daemon(self, models=("tiny",), config="", args=()):
        argv = ["--threads", "1"]
        for m in models:
            argv += ["--model", MODELS[m]]
        d = Daemon(BITNETD, config=config, args=argv + list(args))
        self.addCleanup(d.close)
        return d

    def test_stream_sends_job_id_then_text_then_usage(self):
        d = self.daemon()
        c = Conn(d.connect())
        first = generate(c, prompt="Hello world", max_tokens=24)
        self.assertTrue(first["continues"])
        self.assertIsInstance(first["parameters"]["job"], int)
        self.assertEqual(first["parameters"]["model"], "tiny")
        pieces = []
        while True:
            r = c.recv()
            if not r.get("continues"):
                final = r["parameters"]
                break
            self.assertEqual(list(r["parameters"]), ["text"])
            pieces.append(r["parameters"]["text"])
        self.assertGreater(len(pieces), 0)
        self.assertEqual(final["job"], first["parameters"]["job"])
        self.assertEqual(final["finish_reason"], "length")
        self.assertEqual(final["backend"], "native")
        model = call(d, "io.bitnetd.Query.ListModels")["parameters"]["models"][0]
        self.assertEqual(final["kernel"], model["kernel"])
        u = final["usage"]
        self.assertEqual(u["generated_tokens"], 24)
        self.assertEqual(u["prompt_tokens"],
                         len(call(d, "io.bitnetd.Inference.Tokenize",
                                  {"text": "Hello world"})["parameters"]["tokens"]))
        for key in ("prefill_ms", "decode_ms", "decode_tokens_per_s", "queue_ms"):
            self.assertGreaterEqual(u[key], 0, key)
        self.assertEqual(jobs(d), [])
        self.assertEqual(d.stop(), 0)

    def test_greedy_text_equals_bitnet_run(self):
        d = self.daemon()
        c = Conn(d.connect())
        for prompt, n in (("Hello world", 40), ("The quick brown fox", 17)):
            generate(c, prompt=prompt, max_tokens=n)
            text, final = finish(c)
            self.assertEqual(text, bitnet_run(MODELS["tiny"], prompt, n), prompt)

    def test_chat_messages_render_like_bitnet_run_chat(self):
        d = self.daemon()
        c = Conn(d.connect())
        generate(c, messages=[{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Hi there"}], max_tokens=20)
        text, final = finish(c)
        expect = bitnet_run(MODELS["tiny"], "Hi there", 20, chat=True, system="Be brief.")
        self.assertEqual(text, expect)
        # The rendered prompt has the headers and turn ends the plain text lacks.
        plain = call(d, "io.bitnetd.Inference.Tokenize", {"text": "Hi there"})["parameters"]
        self.assertGreater(final["usage"]["prompt_tokens"], len(plain["tokens"]))
        r = generate(c, messages=[{"role": "robot", "content": "x"}])
        self.assertEqual(r["error"], "org.varlink.service.InvalidParameter")
        self.assertEqual(r["parameters"]["parameter"], "messages")

    def test_bad_calls_are_refused(self):
        d = self.daemon()
        c = Conn(d.connect())
        r = c.call("io.bitnetd.Inference.Generate", {"prompt": "x"})
        self.assertEqual(r, {"error": "org.varlink.service.ExpectedMore", "parameters": {}})
        for params, bad in (({"prompt": "x", "temperature": -1}, "temperature"),
                            ({"prompt": "x", "top_p": 0}, "top_p"),
                            ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
                            ({"prompt": "x", "stop": [1]}, "stop"),
                            ({"prompt": "x", "messages": []}, "messages"),
                            ({}, "prompt"),
                            ({"prompt": "x", "bogus": 1}, "bogus")):
            r = generate(c, **params)
            self.assertEqual(r["parameters"], {"parameter": bad}, params)
        r = generate(c, prompt="x", model="nope")
        self.assertEqual(r, {"error": "io.bitnetd.Inference.ModelNotFound",
                             "parameters": {"model": "nope"}})
        # A prompt longer than the context ends the job with an error reply.
        self.assertIn("job", generate(c, prompt="x " * 600, max_tokens=4)["parameters"])
        text, final = finish(c)
        self.assertEqual((text, final["finish_reason"]), ("", "error"))
        self.assertIn("context", final["error"])
        # A stop string ends the generation before it appears.
        generate(c, prompt="Hello world", max_tokens=40)
        full, _ = finish(c)
        stop = full[10:12]
        generate(c, prompt="Hello world", max_tokens=40, stop=[stop])
        text, final = finish(c)
        self.assertEqual(final["finish_reason"], "stop")
        self.assertEqual(text, full[:full.index(stop)])

    def test_cancel_from_another_connection(self):
        d = self.daemon(models=("slow",))
        c = Conn(d.connect())
        job = generate(c, prompt="Count", max_tokens=LONG)["parameters"]["job"]
        wait_for_text(c)
        self.assertEqual(call(d, "io.bitnetd.Inference.Cancel", {"job": job}),
                         {"parameters": {}})
        text, final = finish(c)
        self.assertEqual(final["finish_reason"], "cancelled")
        self.assertLess(final["usage"]["generated_tokens"], LONG)
        self.assertEqual(call(d, "io.bitnetd.Inference.Cancel", {"job": job})["error"],
                         "io.bitnetd.Inference.JobNotFound")
        # The connection serves the next call.
        self.assertIn("parameters", c.call("io.bitnetd.Query.GetStatus"))

    def test_deadline_cancels_a_job_queued_or_running(self):
        d = self.daemon(models=("slow",), config="n_seq_max = 1\n")
        c = Conn(d.connect())
        generate(c, prompt="Count", max_tokens=LONG, deadline_ms=1500)
        # A second job waits behind it in the queue; its deadline passes there.
        q = Conn(d.connect())
        generate(q, prompt="Count", max_tokens=LONG, deadline_ms=300)
        text, final = finish(q)
        self.assertEqual(final["finish_reason"], "cancelled")
        self.assertEqual(final["error"], "the job's deadline of 300 ms passed")
        self.assertEqual(final["usage"]["generated_tokens"], 0)
        text, final = finish(c)
        self.assertEqual(final["finish_reason"], "cancelled")
        self.assertEqual(final["error"], "the job's deadline of 1500 ms passed")
        self.assertGreater(final["usage"]["generated_tokens"], 0)
        self.assertLess(final["usage"]["generated_tokens"], LONG)
        self.assertIn("event=job-deadline", d.log_text())
        # A job that ends in time keeps its normal end, and bad values are refused.
        generate(c, prompt="Hi", max_tokens=3, deadline_ms=60000)
        text, final = finish(c)
        self.assertEqual(final["finish_reason"], "length")
        self.assertNotIn("error", final)
        for bad in (0, -5, "soon"):
            r = c.call("io.bitnetd.Inference.Generate",
                       {"prompt": "Hi", "deadline_ms": bad}, more=True)
            self.assertEqual(r["error"], "org.varlink.service.InvalidParameter", r)
        c.close()
        q.close()
        self.assertEqual(d.stop(), 0)

    def test_disconnect_mid_stream_frees_the_job(self):
        d = self.daemon(models=("slow",))
        c = Conn(d.connect())
        generate(c, prompt="Count", max_tokens=LONG)
        wait_for_text(c)
        self.assertEqual(len(jobs(d)), 1)
        c.close()
        poll(lambda: jobs(d) == [])
        self.assertIn("finish=cancelled", d.log_text())
        c = Conn(d.connect())
        generate(c, prompt="Hi", max_tokens=3)
        self.assertEqual(finish(c)[1]["finish_reason"], "length")
        self.assertEqual(d.stop(), 0)

    def test_queue_full_only_past_the_configured_depth(self):
        d = self.daemon(models=("slow",), config="n_seq_max = 1\nmax_queued_jobs = 2\n")
        running = Conn(d.connect())
        a = generate(running, prompt="Count", max_tokens=LONG)["parameters"]["job"]
        wait_for_text(running)
        queued = [Conn(d.connect()) for _ in range(2)]
        ids = [generate(q, prompt="Wait", max_tokens=LONG)["parameters"]["job"]
               for q in queued]
        states = {j["id"]: j["state"] for j in jobs(d)}
        self.assertEqual(states, {a: "decode", ids[0]: "queued", ids[1]: "queued"})
        extra = Conn(d.connect())
        r = generate(extra, prompt="No room", max_tokens=4)
        self.assertEqual(r, {"error": "io.bitnetd.Inference.QueueFull",
                             "parameters": {"max_queued_jobs": 2}})
        # The per-user limit comes before the queue's.
        self.assertEqual(reload(d, "n_seq_max = 1\nmax_queued_jobs = 2\nmax_jobs_per_uid = 3\n"),
                         {"parameters": {}})
        r = generate(extra, prompt="No room", max_tokens=4)
        self.assertEqual(r, {"error": "io.bitnetd.Inference.TooManyJobs",
                             "parameters": {"max_jobs_per_uid": 3}})
        # A queued job is cancelled without running; the running one too.
        self.assertEqual(call(d, "io.bitnetd.Inference.Cancel", {"job": ids[1]}),
                         {"parameters": {}})
        text, final = finish(queued[1])
        self.assertEqual((text, final["finish_reason"], final["usage"]["generated_tokens"]),
                         ("", "cancelled", 0))
        # Closing a connection cancels its queued job.
        queued[0].close()
        poll(lambda: len(jobs(d)) == 1)
        # With room in the queue again, a job is accepted.
        self.assertIn("job", generate(extra, prompt="Room", max_tokens=2)["parameters"])
        call(d, "io.bitnetd.Inference.Cancel", {"job": a})
        self.assertEqual(finish(running)[1]["finish_reason"], "cancelled")
        self.assertEqual(finish(extra)[1]["finish_reason"], "length")
        # With max_queued_jobs 0 a job is taken while a sequence is free.
        self.assertEqual(reload(d, "n_seq_max = 1\nmax_queued_jobs = 0\n"), {"parameters": {}})
        generate(extra, prompt="Free", max_tokens=2)
        self.assertEqual(finish(extra)[1]["finish_reason"], "length")
        self.assertEqual(d.stop(), 0)

    def test_four_concurrent_generations_equal_their_solo_results(self):
        # The slow model makes the four overlap, so they share batches.
        d = self.daemon(models=("slow",))
        prompts = ["Hello world", "The cat", "Once upon a time", "Ternary weights"]
        solo = []
        c = Conn(d.connect())
        for i, p in enumerate(prompts):
            generate(c, prompt=p, max_tokens=30 + i)
            solo.append(finish(c)[0])
        conns = [Conn(d.connect()) for _ in prompts]
        for i, (cc, p) in enumerate(zip(conns, prompts)):
            generate(cc, prompt=p, max_tokens=30 + i)
        together = [finish(cc)[0] for cc in conns]
        self.assertEqual(together, solo)
        self.assertEqual(together[0], bitnet_run(MODELS["slow"], prompts[0], 30))
        self.assertIn("n_seq_max=4", d.log_text())

    def test_tokenize_and_detokenize_round_trip(self):
        d = self.daemon()
        text = "Hello world, the cat sat on 42 mats. ünïcödé"
        toks = call(d, "io.bitnetd.Inference.Tokenize", {"text": text})["parameters"]["tokens"]
        bare = call(d, "io.bitnetd.Inference.Tokenize",
                    {"text": text, "add_special": False})["parameters"]["tokens"]
        self.assertEqual(toks[1:], bare)  # BOS first
        back = call(d, "io.bitnetd.Inference.Detokenize", {"tokens": toks})
        self.assertEqual(back["parameters"]["text"], text)
        # Control-token text is text unless parse_special asks otherwise.
        special = call(d, "io.bitnetd.Inference.Tokenize",
                       {"text": "<|eot_id|>", "add_special": False, "parse_special": True})
        plain = call(d, "io.bitnetd.Inference.Tokenize",
                     {"text": "<|eot_id|>", "add_special": False})
        self.assertEqual(len(special["parameters"]["tokens"]), 1)
        self.assertGreater(len(plain["parameters"]["tokens"]), 1)
        r = call(d, "io.bitnetd.Inference.Detokenize", {"tokens": [1 << 30]})
        self.assertEqual(r["parameters"], {"parameter": "tokens"})

    def test_load_and_unload_models(self):
        d = self.daemon(models=())
        st = call(d, "io.bitnetd.Query.GetStatus")["parameters"]
        self.assertEqual((st["models"], st["jobs"]), ([], 0))
        r = Conn(d.connect()).call("io.bitnetd.Inference.Generate", {"prompt": "x"}, more=True)
        self.assertEqual(r["error"], "io.bitnetd.Inference.ModelNotFound")
        r = call(d, "io.bitnetd.Admin.LoadModel", {"path": MODELS["tiny"], "name": "t"})
        self.assertEqual(r["parameters"]["model"]["name"], "t")
        self.assertEqual(r["parameters"]["model"]["state"], "ready")
        r = call(d, "io.bitnetd.Admin.LoadModel", {"path": MODELS["slow"]})
        self.assertEqual(r["parameters"]["model"]["name"], "slow")
        r = call(d, "io.bitnetd.Admin.LoadModel", {"path": MODELS["tiny"], "name": "t"})
        self.assertEqual(r, {"error": "io.bitnetd.Admin.ModelExists",
                             "parameters": {"name": "t"}})
        missing = os.path.join(MODELS["dir"], "missing.gguf")
        r = call(d, "io.bitnetd.Admin.LoadModel", {"path": missing})
        self.assertEqual(r["error"], "io.bitnetd.Admin.ModelLoadFailed")
        self.assertEqual(r["parameters"]["path"], missing)
        self.assertIn("No such file", r["parameters"]["reason"])
        names = [m["name"] for m in call(d, "io.bitnetd.Query.ListModels")["parameters"]["models"]]
        self.assertEqual(names, ["t", "slow"])
        st = call(d, "io.bitnetd.Query.GetStatus")["parameters"]
        self.assertIn("model t (", st["status"])
        # Unloading cancels the model's running job.
        c = Conn(d.connect())
        generate(c, prompt="Count", max_tokens=LONG, model="slow")
        wait_for_text(c)
        self.assertEqual(call(d, "io.bitnetd.Admin.UnloadModel", {"name": "slow"}),
                         {"parameters": {}})
        self.assertEqual(finish(c)[1]["finish_reason"], "cancelled")
        r = call(d, "io.bitnetd.Admin.UnloadModel", {"name": "slow"})
        self.assertEqual(r["error"], "io.bitnetd.Inference.ModelNotFound")
        generate(c, prompt="Hi", max_tokens=2)  # the default is now t
        self.assertEqual(finish(c)[1]["finish_reason"], "length")
        self.assertEqual(d.stop(), 0)

    def test_sigterm_during_a_generation_exits_zero(self):
        d = self.daemon(models=("slow", "tiny"))
        c = Conn(d.connect())
        generate(c, prompt="Count", max_tokens=LONG)
        wait_for_text(c)
        short = Conn(d.connect())
        generate(short, prompt="Hi", max_tokens=2, model="tiny")
        d.proc.send_signal(signal.SIGTERM)
        # A generation that ends within the drain timeout finishes; one that
        # would not is cancelled at the timeout and still gets its final reply.
        self.assertEqual(finish(short)[1]["finish_reason"], "length")
        self.assertEqual(finish(c)[1]["finish_reason"], "cancelled")
        self.assertTrue(c.at_eof())
        self.assertEqual(d.proc.wait(timeout=GUARD_SECONDS), 0)
        d.proc = None
        d.logfile.close()
        self.assertIn("event=model-unloaded", d.log_text())

    def test_a_model_that_fails_to_load_stops_the_daemon(self):
        d = Daemon(BITNETD, args=["--model", os.path.join(MODELS["dir"], "none.gguf")],
                   start=False)
        self.addCleanup(d.close)
        d.logfile = open(d.log, "ab")
        proc = subprocess.Popen(d.command(), env=d.environment(), stdout=d.logfile,
                                stderr=d.logfile)
        self.assertEqual(proc.wait(timeout=GUARD_SECONDS), 1)
        d.logfile.close()
        self.assertIn("event=model-load-failed", d.log_text())
        self.assertNotIn("READY=1", "".join(self.drain_notify(d)))

    @staticmethod
    def drain_notify(d):
        d.notify.settimeout(0)
        seen = []
        try:
            while True:
                seen.append(d.notify.recv(4096).decode())
        except BlockingIOError:
            return seen

    def ctl(self, d, *args, **kw):
        env = dict(os.environ, BITNETD_SOCKET=d.socket)
        return subprocess.run([BITNETCTL] + list(args), env=env, capture_output=True,
                              timeout=GUARD_SECONDS, **kw)

    def test_bitnetctl_generate_ps_models_tokenize(self):
        d = self.daemon(models=("tiny", "slow"))
        r = self.ctl(d, "generate", "-n", "40", "Hello", "world")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), bitnet_run(MODELS["tiny"], "Hello world", 40) + "\n")
        self.assertIn(b"length", r.stderr)
        r = self.ctl(d, "models")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertTrue(lines[0].startswith("NAME"))
        self.assertEqual([ln.split()[0] for ln in lines[1:]], ["tiny", "slow"])
        r = self.ctl(d, "--json", "tokenize", "Hello")
        self.assertEqual(json.loads(r.stdout),
                         call(d, "io.bitnetd.Inference.Tokenize",
                              {"text": "Hello"})["parameters"]["tokens"])
        # ps while a generation runs, then Ctrl-C on bitnetctl generate.
        gen = subprocess.Popen([BITNETCTL, "--socket", d.socket, "generate", "--model", "slow",
                                "-n", str(LONG), "Count"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        poll(lambda: any(j["tokens"] > 0 for j in jobs(d)))
        r = self.ctl(d, "ps")
        self.assertEqual(r.returncode, 0, r.stderr)
        row = r.stdout.decode().splitlines()[1].split()
        self.assertEqual((row[1], row[2], row[3]), ("decode", "slow", "native"))
        r = self.ctl(d, "--json", "ps")
        self.assertEqual(json.loads(r.stdout)[0]["uid"], os.getuid())
        gen.send_signal(signal.SIGINT)
        out, err = gen.communicate(timeout=GUARD_SECONDS)
        self.assertEqual(gen.returncode, 130, err)
        self.assertIn(b"cancelled", err)
        self.assertEqual(jobs(d), [])
        self.assertEqual(d.stop(), 0)

    def test_bitnetctl_load_and_unload(self):
        d = self.daemon(models=())
        r = self.ctl(d, "load", MODELS["tiny"], "--name", "mine")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"loaded mine:"), r.stdout)
        r = self.ctl(d, "load", os.path.join(MODELS["dir"], "none.gguf"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"ModelLoadFailed", r.stderr)
        r = self.ctl(d, "unload", "mine")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.ctl(d, "models").stdout, b"no model loaded\n")


if __name__ == "__main__":
    BITNETD, BITNETCTL, BITNET_RUN, MKMODEL = sys.argv[1:5]
    del sys.argv[1:5]
    unittest.main(verbosity=2)
