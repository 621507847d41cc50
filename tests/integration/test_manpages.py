#!/usr/bin/env python3
"""The manual pages (docs/man, configured into the build) render without a
groff warning, and cannot rot silently: every long option `bitnetd --help`
lists is a tagged paragraph of bitnetd.8 (and every configuration key is
named there), every subcommand of `bitnetctl --help` is a tagged paragraph
of bitnetctl.1 with each option its own --help names, and the exit codes
`bitnetctl --help` states are the ones the page lists.

Usage: test_manpages.py BITNETD BITNETCTL MAN_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean

BITNETD = BITNETCTL = MAN_DIR = None


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def render(page):
    """The page as plain text (no bold, underline or hyphenation marks)."""
    out = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-ww", page],
                         check=True, capture_output=True, text=True)
    return out.stdout


def tags(text):
    """The tags of the tagged paragraphs (.TP) of a rendered page: the lines
    indented by exactly seven columns."""
    return [line[7:] for line in text.splitlines()
            if line.startswith(" " * 7) and not line.startswith(" " * 8)]


def section(text, name):
    m = re.search(r"^" + name + r"\n(.*?)(?=^\S)", text, re.S | re.M)
    return m.group(1) if m else ""


@unittest.skipUnless(shutil.which("groff"), "groff is not installed (scripts/deps.sh)")
class ManPages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bitnetd_8 = os.path.join(MAN_DIR, "bitnetd.8")
        cls.bitnetctl_1 = os.path.join(MAN_DIR, "bitnetctl.1")

    def test_pages_render_without_warnings(self):
        for page in (self.bitnetd_8, self.bitnetctl_1):
            r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, page)
            self.assertEqual(r.stderr, "", page)
            with open(page) as f:
                self.assertNotRegex(f.read(), r"@[A-Z_]+@", f"{page}: an unconfigured variable")

    def test_man_reads_them(self):
        if not shutil.which("man"):
            self.skipTest("man is not installed")
        for page, title in ((self.bitnetd_8, "BITNETD(8)"), (self.bitnetctl_1, "BITNETCTL(1)")):
            r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                               env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "", page)
            self.assertIn(title, r.stdout)

    def test_every_bitnetd_option_is_documented(self):
        help_text = run(BITNETD, "--help")
        options = re.findall(r"^  (--[a-z][a-z-]*)", help_text, re.M)
        self.assertGreaterEqual(len(options), 15, help_text)
        page = render(self.bitnetd_8)
        documented = {t.split()[0] for t in tags(section(page, "OPTIONS")) if t.strip()}
        for opt in options:
            self.assertIn(opt, documented, f"bitnetd.8 has no paragraph for {opt}")
        # Every option but --config, --user, --help and --version is a key.
        config = section(page, "CONFIGURATION FILE")
        for opt in options:
            if opt in ("--config", "--user", "--help", "--version"):
                continue
            key = opt[2:].replace("-", "_")
            self.assertRegex(config, r"\b" + key + r"\b", f"bitnetd.8 does not name key {key}")
        # Each option's variable in --help is the one the page's rule gives.
        pairs = re.findall(r"^  (--[a-z][a-z-]*).*\n\s+\[(BITNETD_[A-Z_]+),", help_text, re.M)
        self.assertGreaterEqual(len(pairs), 15, help_text)
        for opt, var in pairs:
            self.assertEqual(var, "BITNETD_" + opt[2:].upper().replace("-", "_"))
        self.assertIn("prefixed with BITNETD_", " ".join(section(page, "ENVIRONMENT").split()))

    def test_every_bitnetctl_subcommand_and_option_is_documented(self):
        help_text = run(BITNETCTL, "--help")
        commands = re.findall(r"^  ([a-z][a-z-]*) ", help_text.split("Commands:")[1].split(
            "Options:")[0], re.M)
        self.assertGreaterEqual(len(commands), 10, help_text)
        page = render(self.bitnetctl_1)
        documented = {t.split()[0]: t for t in tags(section(page, "COMMANDS")) if t.strip()}
        for cmd in commands:
            self.assertIn(cmd, documented, f"bitnetctl.1 has no paragraph for {cmd}")
            usage = run(BITNETCTL, cmd, "--help").splitlines()[0]
            for opt in re.findall(r"--[a-z][a-z-]*", usage):
                self.assertIn(opt, documented[cmd], f"bitnetctl.1: {cmd} lacks {opt}")
        global_opts = re.findall(r"^  (--[a-z][a-z-]*)", help_text.split("Options:")[1], re.M)
        listed = {t.split()[0] for t in tags(section(page, "OPTIONS")) if t.strip()}
        for opt in global_opts:
            self.assertIn(opt, listed, f"bitnetctl.1 has no paragraph for {opt}")

    def test_bitnetctl_exit_codes_match(self):
        help_text = run(BITNETCTL, "--help")
        stated = re.search(r"Exit codes: (.*)\.", help_text).group(1)
        codes = re.findall(r"(\d+) [a-z]", stated)
        self.assertGreaterEqual(len(codes), 4, stated)
        listed = {t.split()[0] for t in tags(section(render(self.bitnetctl_1), "EXIT STATUS"))
                  if t.strip()}
        for code in codes:
            self.assertIn(code, listed)


if __name__ == "__main__":
    BITNETD, BITNETCTL, MAN_DIR = sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
