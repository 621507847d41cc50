#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from real files, at build time.

    make_corpora.py OUT_ROOT --protocol-doc docs/protocol.md \
        --config-example systemd/bitnetd.conf.example --reference .cache/reference \
        --elf LIB.so...

OUT_ROOT/fuzz_varlink  every `exchange` block of docs/protocol.md (the calls a
                       client sent, and the replies bitnetd gave) framed as a
                       byte stream, plus each json block, in the input format
                       of tests/daemon/fuzz_varlink.c (two leading bytes pick
                       the chunk size and the message size limit)
OUT_ROOT/fuzz_tokenizer the strings of llama.cpp's tokenizer test vectors
                       (ggml-vocab-llama-{bpe,spm}.gguf.inp) in each text mode
OUT_ROOT/fuzz_config   the example config file, as shipped and with every key
                       uncommented, and each of its lines alone
OUT_ROOT/fuzz_elf      the shared objects this build made, and stripped copies
The GGUF corpus comes from make_gguf_corpus.sh (it needs bitnet-mkmodel).
Nothing here is committed: the inputs are regenerated from their sources.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys


def put(out_dir, data):
    """Stores one input under its content hash, as libFuzzer names them."""
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def fresh(root, target):
    d = os.path.join(root, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def varlink(root, doc_path):
    out = fresh(root, "fuzz_varlink")
    with open(doc_path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```(exchange|exchange-shape|json)\n(.*?)^```", text, re.S | re.M)
    for kind, body in blocks:
        lines = body.strip("\n").split("\n")
        if kind == "json":
            streams = [[line for line in lines if line.startswith("{")]]
        else:
            streams = [[line[3:] for line in lines if line.startswith("-> ")],
                       [line[3:] for line in lines if line.startswith("<- ")]]
        for msgs in streams:
            if not msgs:
                continue
            stream = b"".join(m.encode() + b"\0" for m in msgs)
            # Large chunks and a 16 KiB limit, then one byte at a time.
            put(out, bytes([255, 255]) + stream)
            put(out, bytes([0, 255]) + stream)
    return len(os.listdir(out))


def tokenizer(root, ref):
    out = fresh(root, "fuzz_tokenizer")
    models = os.path.join(ref, "llama.cpp", "models")
    for mode_base, vocab in ((0, "llama-bpe"), (2, "llama-spm")):
        path = os.path.join(models, "ggml-vocab-%s.gguf.inp" % vocab)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            tests = f.read().split(b"\n__ggml_vocab_test__\n")
        for t in tests:
            for special in (0, 1):
                put(out, bytes([mode_base + special]) + t)
    # Special tokens written out, so that parse_special has something to find.
    for text in (b"<|begin_of_text|>Hello<|eot_id|>", b"<s> Hello</s>"):
        for mode in range(4):
            put(out, bytes([mode]) + text)
    return len(os.listdir(out))


def config(root, example):
    out = fresh(root, "fuzz_config")
    with open(example, "rb") as f:
        text = f.read()
    uncommented = re.sub(rb"(?m)^# ([a-z_]+ = )", rb"\1", text)
    put(out, text)
    put(out, uncommented)
    for line in uncommented.split(b"\n"):
        if line and not line.startswith(b"#"):
            put(out, line + b"\n")
    return len(os.listdir(out))


def elf(root, libs):
    out = fresh(root, "fuzz_elf")
    strip = shutil.which("strip")
    for lib in libs:
        with open(lib, "rb") as f:
            put(out, f.read())
        if strip:
            tmp = os.path.join(out, ".stripped")
            r = subprocess.run([strip, "--strip-all", "-o", tmp, lib], capture_output=True)
            if r.returncode == 0:
                with open(tmp, "rb") as f:
                    put(out, f.read())
            if os.path.exists(tmp):
                os.unlink(tmp)
    return len(os.listdir(out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out_root")
    p.add_argument("--protocol-doc", required=True)
    p.add_argument("--config-example", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--elf", nargs="*", default=[])
    a = p.parse_args()
    counts = {
        "fuzz_varlink": varlink(a.out_root, a.protocol_doc),
        "fuzz_tokenizer": tokenizer(a.out_root, a.reference),
        "fuzz_config": config(a.out_root, a.config_example),
        "fuzz_elf": elf(a.out_root, a.elf),
    }
    print("corpora: " + ", ".join("%s %d" % kv for kv in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
