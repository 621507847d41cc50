#!/usr/bin/env python3
"""Replays every `exchange` block of docs/protocol.md against a real bitnetd,
byte for byte: lines "-> MSG" are sent (each followed by NUL), lines
"<- MSG" must be the next message received, exactly.

Usage: test_protocol_doc.py BITNETD PROTOCOL_MD
"""
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import Conn, Daemon  # noqa: E402

BITNETD = DOC = None


def exchanges(text):
    return [block.strip("\n").split("\n")
            for block in re.findall(r"^```exchange\n(.*?)^```", text, re.S | re.M)]


class ProtocolDoc(unittest.TestCase):
    def test_every_exchange_replays_byte_for_byte(self):
        with open(DOC) as f:
            blocks = exchanges(f.read())
        self.assertGreaterEqual(len(blocks), 5)
        d = Daemon(BITNETD)
        try:
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
        finally:
            d.close()


if __name__ == "__main__":
    BITNETD, DOC = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
