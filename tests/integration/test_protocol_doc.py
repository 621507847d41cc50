#!/usr/bin/env python3
"""Replays every `exchange` block of docs/protocol.md against a real bitnetd,
byte for byte: lines "-> MSG" are sent (each followed by NUL), lines
"<- MSG" must be the next message received, exactly.

`exchange-shape` blocks are replayed the same way but compared by shape:
the same keys in the same order, values of the same JSON type (any number
matches any number). A line "<- ..." stands for any number of text replies
({"text": ...} with "continues") before the next line matches. They cover
generation, whose timings, kernel and text chunking vary between machines.

The daemon serves a model written by bitnet-mkmodel (preset tiny, i2s,
seed 1) and named "tiny", with one compute thread.

Usage: test_protocol_doc.py BITNETD PROTOCOL_MD BITNET_MKMODEL
"""
import json
import os
import re
import shutil
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import Conn, Daemon, tiny_model_dir  # noqa: E402

BITNETD = DOC = MKMODEL = None


def exchanges(text, kind="exchange"):
    return [block.strip("\n").split("\n")
            for block in re.findall(r"^```" + kind + r"\n(.*?)^```", text, re.S | re.M)]


def same_shape(want, got):
    if isinstance(want, dict):
        return (isinstance(got, dict) and list(want) == list(got)
                and all(same_shape(want[k], got[k]) for k in want))
    if isinstance(want, list):
        return isinstance(got, list) and all(same_shape(want[0], g) for g in got) \
            if want else got == []
    if isinstance(want, bool) or want is None:
        return type(got) is type(want)
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool)
    return type(got) is type(want)


def is_text_reply(msg):
    return msg.get("continues") is True and list(msg.get("parameters", {})) == ["text"]


class ProtocolDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.model = tiny_model_dir(MKMODEL, "bitnetd-doc-", 1)
        with open(DOC) as f:
            cls.text = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def daemon(self):
        d = Daemon(BITNETD, args=["--threads", "1", "--model", self.model])
        self.addCleanup(d.close)
        return d

    def test_every_exchange_replays_byte_for_byte(self):
        blocks = exchanges(self.text)
        self.assertGreaterEqual(len(blocks), 5)
        d = self.daemon()
        for block in blocks:
            c = Conn(d.connect())
            for line in block:
                direction, msg = line[:3], line[3:]
                if direction == "-> ":
                    c.sock.sendall(msg.encode() + b"\0")
                elif direction == "<- ":
                    self.assertEqual(c.recv_raw(), msg.encode(), "\n".join(block))
                else:
                    self.fail(f"bad exchange line {line!r}")
            c.close()
        self.assertEqual(d.stop(), 0)

    def test_every_shape_exchange_replays_by_shape(self):
        blocks = exchanges(self.text, "exchange-shape")
        self.assertGreaterEqual(len(blocks), 2)
        d = self.daemon()
        for block in blocks:
            c = Conn(d.connect())
            skip = False
            for line in block:
                direction, msg = line[:3], line[3:]
                if direction == "-> ":
                    c.sock.sendall(msg.encode() + b"\0")
                elif direction == "<- " and msg == "...":
                    skip = True
                elif direction == "<- ":
                    want = json.loads(msg)
                    got = c.recv()
                    while skip and not same_shape(want, got) and is_text_reply(got):
                        got = c.recv()
                    skip = False
                    self.assertTrue(same_shape(want, got), f"{got}\n" + "\n".join(block))
                else:
                    self.fail(f"bad exchange line {line!r}")
            c.close()
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    BITNETD, DOC, MKMODEL = sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
