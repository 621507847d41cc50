#!/usr/bin/env python3
"""completions/bitnetctl, sourced in a real bash: COMPREPLY for a few
prefixes against the built bitnetctl. The expected words come from the
program itself (`bitnetctl --help`, `bitnetctl kernels --json`), so the test
follows the program and fails when the completion stops following it.

Usage: test_completion.py BITNETCTL COMPLETION_SCRIPT
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean

BITNETCTL = SCRIPT = None

# Sources the completion in a clean, non-interactive bash, sets the words
# and the cursor, calls the function `complete` registered for bitnetctl and
# prints COMPREPLY one word a line.
DRIVER = r'''
set -u
source "$1"
shift
spec=$(complete -p bitnetctl)
fn=${spec#*-F }
fn=${fn%% *}
COMP_CWORD=$1
shift
COMP_WORDS=("$@")
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(*words, cwd=None):
    """COMPREPLY for the command line BITNETCTL words..., the cursor on the
    last word."""
    argv = [BITNETCTL, *words]
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "driver", SCRIPT,
                        str(len(argv) - 1), *argv], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"bash failed: {r.stderr}")
    return [w for w in r.stdout.split("\n") if w]


def help_commands():
    text = subprocess.run([BITNETCTL, "--help"], check=True, capture_output=True,
                          text=True).stdout
    block = text.split("Commands:")[1].split("Options:")[0]
    return re.findall(r"^  ([a-z][a-z-]*) ", block, re.M)


class Completion(unittest.TestCase):
    def test_empty_word_offers_every_subcommand(self):
        commands = help_commands()
        self.assertGreaterEqual(len(commands), 10)
        self.assertEqual(sorted(complete("")), sorted(commands))

    def test_prefixes_of_subcommands(self):
        commands = help_commands()
        for prefix in ("an", "st", "va", "u"):
            want = sorted(c for c in commands if c.startswith(prefix))
            self.assertTrue(want, prefix)
            self.assertEqual(sorted(complete(prefix)), want, prefix)
        # After a global option and its value the subcommand is still completed.
        self.assertEqual(complete("--json", "--socket", "/tmp/x.sock", "mo"), ["models"])

    def test_global_options(self):
        self.assertEqual(sorted(complete("--")), ["--help", "--json", "--socket", "--version"])
        self.assertEqual(complete("--js"), ["--json"])

    def test_kernel_ids(self):
        listed = json.loads(subprocess.run([BITNETCTL, "kernels", "--json"], check=True,
                                           capture_output=True, text=True).stdout)
        ids = [k["id"] for k in listed]
        self.assertTrue(ids)
        self.assertEqual(sorted(complete("kernels", "")), sorted(ids))
        family = ids[0].split(".")[0] + "."
        self.assertEqual(sorted(complete("kernels", family)),
                         sorted(i for i in ids if i.startswith(family)))

    def test_subcommand_options(self):
        self.assertEqual(sorted(complete("generate", "--t")), ["--temp", "--top-k", "--top-p"])
        self.assertEqual(complete("capabilities", "--l"), ["--local"])
        self.assertEqual(complete("validate-library", "--d"), ["--dir"])
        self.assertEqual(sorted(complete("tokenize", "--")),
                         ["--help", "--json", "--model", "--no-special", "--parse-special"])

    def test_files_for_path_arguments(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("libllama.so", "libggml.so", "model.gguf"):
                open(os.path.join(d, name), "w").close()
            self.assertEqual(sorted(complete("analyze-library", "lib", cwd=d)),
                             ["libggml.so", "libllama.so"])
            self.assertEqual(complete("inspect", "mo", cwd=d), ["model.gguf"])
            # A value that is not a path gets no file names.
            self.assertEqual(complete("load", "--name", "", cwd=d), [])


if __name__ == "__main__":
    BITNETCTL, SCRIPT = sys.argv.pop(1), sys.argv.pop(1)
    unittest.main(verbosity=2)
