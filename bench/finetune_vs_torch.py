#!/usr/bin/env python3
"""owl finetune against PyTorch on the same LoRA task, run alternately on this machine.

Both train a rank-8 LoRA (alpha 16) on all seven linear weights of every layer of an F32 llama
GGUF model (the embedded stories260K by default), in float32, AdamW, one example per step, the
loss on the completion tokens (and EOS) of prompt/completion JSONL examples, tokenized by owl.
The PyTorch side is a plain llama forward written here (RMSNorm, RoPE in GGUF's layout, GQA,
SwiGLU), checked against `owl logits` before it is timed. Prints tokens/s of each round, the
medians, their ratio, and the share of the machine's f32 FLOP peak (given with --peak-gflops)
each reaches, counting a LoRA step as 3x the forward's FLOPs.

Needs Debian's python3-torch (PyTorch 1.13): /usr/bin/python3 bench/finetune_vs_torch.py
"""
import argparse
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- GGUF: the metadata and the F32 tensors of a model ----
def read_gguf(path):
    data = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def string():
        nonlocal pos
        (n,) = take("Q")
        s = bytes(data[pos:pos + n]).decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            (et,) = take("I")
            (n,) = take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])[0]

    if bytes(data[:4]) != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    (_version,) = take("I")
    n_tensors, n_kv = take("QQ")
    meta = {}
    for _ in range(n_kv):
        key = string()
        (t,) = take("I")
        meta[key] = value(t)
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = take("I")
        dims = take("Q" * nd)
        (ttype,) = take("I")
        (offset,) = take("Q")
        infos.append((name, dims, ttype, offset))
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, dims, ttype, offset in infos:
        if ttype != 0:
            sys.exit(f"{path}: tensor {name} is not F32 (type {ttype}); this benchmark reads F32 models")
        count = int(np.prod(dims))
        arr = np.frombuffer(data, dtype=np.float32, count=count, offset=base + offset)
        tensors[name] = torch.from_numpy(arr.reshape(list(reversed(dims))).copy())
    return meta, tensors


class Llama(torch.nn.Module):
    """A llama forward over one sequence with LoRA pairs on q, k, v, o, gate, up, down."""

    KINDS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate", "up": "ffn_up",
             "down": "ffn_down"}

    def __init__(self, meta, w, rank, alpha, seed):
        super().__init__()
        arch = meta["general.architecture"]
        self.n_layer = meta[f"{arch}.block_count"]
        self.n_head = meta[f"{arch}.attention.head_count"]
        self.n_head_kv = meta.get(f"{arch}.attention.head_count_kv", self.n_head)
        self.eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
        self.theta = meta.get(f"{arch}.rope.freq_base", 10000.0)
        self.w = w
        self.scale = alpha / rank
        torch.manual_seed(seed)
        self.lora = torch.nn.ParameterDict()
        for il in range(self.n_layer):
            for kind, name in self.KINDS.items():
                weight = w[f"blk.{il}.{name}.weight"]
                n_out, n_in = weight.shape
                a = torch.empty(rank, n_in)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's init of A
                self.lora[f"{il}_{kind}_a"] = torch.nn.Parameter(a)
                self.lora[f"{il}_{kind}_b"] = torch.nn.Parameter(torch.zeros(n_out, rank))

    def linear(self, x, il, kind):
        y = x @ self.w[f"blk.{il}.{self.KINDS[kind]}.weight"].T
        return y + self.scale * ((x @ self.lora[f"{il}_{kind}_a"].T) @ self.lora[f"{il}_{kind}_b"].T)

    def rms(self, x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    def rope(self, x):  # [T, H, D]: pairs (2i, 2i+1) rotated, as llama.cpp's "norm" RoPE
        t, _, d = x.shape
        freqs = self.theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
        ang = torch.arange(t, dtype=torch.float32)[:, None] * freqs[None, :]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    def forward(self, tokens):
        w = self.w
        x = w["token_embd.weight"][tokens]
        t = len(tokens)
        mask = torch.full((t, t), float("-inf")).triu(1)
        for il in range(self.n_layer):
            h = self.rms(x, w[f"blk.{il}.attn_norm.weight"])
            q = self.linear(h, il, "q").view(t, self.n_head, -1)
            k = self.linear(h, il, "k").view(t, self.n_head_kv, -1)
            v = self.linear(h, il, "v").view(t, self.n_head_kv, -1)
            q, k = self.rope(q), self.rope(k)
            rep = self.n_head // self.n_head_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(q.shape[-1]) + mask
            o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(t, -1)
            x = x + self.linear(o, il, "o")
            h = self.rms(x, w[f"blk.{il}.ffn_norm.weight"])
            f = torch.nn.functional.silu(self.linear(h, il, "gate")) * self.linear(h, il, "up")
            x = x + self.linear(f, il, "down")
        x = self.rms(x, w["output_norm.weight"])
        return x @ w.get("output.weight", w["token_embd.weight"]).T


def tokenize(owl, model, text):
    out = subprocess.run([owl, "tokenize", "-m", model, "-p", text], capture_output=True, text=True, check=True)
    return [int(t) for t in out.stdout.split()]


def examples(owl, model, path, eos, limit):
    """[(tokens, n_prompt)] as owl finetune makes them: prompt + completion, EOS appended."""
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            ex = json.loads(line)
            full = tokenize(owl, model, ex["prompt"] + ex["completion"]) + [eos]
            prompt = tokenize(owl, model, ex["prompt"])
            n = 0
            while n < len(prompt) and prompt[n] == full[n]:
                n += 1
            out.append((full, n))
            if len(out) == limit:
                break
    return out


def check_against_owl(owl, model_path, net):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.json")
        subprocess.run([owl, "logits", "-m", model_path, "-p", "Once upon a time, there was a little girl", "-n", "0",
                        "-o", out], capture_output=True, check=True)
        ref = json.load(open(out))
    with torch.no_grad():
        got = net(torch.tensor(ref["tokens"]))
    diff = (got - torch.tensor(ref["logits"])).abs().max().item()
    if diff > 1e-2:
        sys.exit(f"the PyTorch forward differs from owl logits by {diff} (max |logit difference|)")
    return diff


def torch_round(net, data, steps, lr):
    opt = torch.optim.AdamW(net.lora.parameters(), lr=lr, weight_decay=0.0)
    tokens = 0
    warm = 3
    for i in range(steps + warm):
        if i == warm:
            tokens, t0 = 0, time.perf_counter()
        seq, n_prompt = data[i % len(data)]
        x = torch.tensor(seq)
        logits = net(x[:-1])
        loss = torch.nn.functional.cross_entropy(logits[n_prompt - 1:], x[n_prompt:])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.lora.parameters(), 1.0)
        opt.step()
        tokens += len(seq)
    return tokens / (time.perf_counter() - t0)


def owl_round(owl, model, data_path, steps, lr, threads):
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "log.jsonl")
        subprocess.run([owl, "finetune", "-m", model, "--data", data_path, "-o", os.path.join(d, "a.gguf"), "--steps",
                        str(steps + 3), "--batch", "1", "--lr", str(lr), "--schedule", "constant", "-t", str(threads),
                        "-q", "--log", log], check=True, stderr=subprocess.DEVNULL)
        rows = [json.loads(l) for l in open(log)][3:]  # the first three steps warm up, as on the PyTorch side
    return sum(r["tokens"] for r in rows) / sum(r["seconds"] for r in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--owl", default=os.path.join(ROOT, "build/apps/cli/owl"))
    p.add_argument("--model", default=os.path.join(ROOT, "models/stories260K.gguf"))
    p.add_argument("--data", default=os.path.join(ROOT, "examples/finetune/train.jsonl"))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--peak-gflops", type=float, default=0, help="the machine's f32 peak, for the share of it reached")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    meta, w = read_gguf(a.model)
    eos = meta.get("tokenizer.ggml.eos_token_id", 2)
    data = examples(a.owl, a.model, a.data, eos, a.steps + 3)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:  # the same examples for owl
        with open(a.data) as src:
            for i, line in enumerate(l for l in src if l.strip()):
                if i == len(data):
                    break
                f.write(line)
        subset = f.name
    net = Llama(meta, w, rank=8, alpha=16, seed=42)
    diff = check_against_owl(a.owl, a.model, net)
    n_params = sum(t.numel() for n, t in w.items() if n.startswith("blk.") and t.dim() == 2)
    n_params += w.get("output.weight", w["token_embd.weight"]).numel()
    flops_per_token = 3 * 2 * n_params
    print(f"model {os.path.basename(a.model)}: {n_params} matmul parameters; PyTorch {torch.__version__}, "
          f"{a.threads} threads; forward checked against owl logits (max |diff| {diff:.1e})")
    print(f"{a.steps} steps of one example each (after 3 warm-up steps), {a.rounds} rounds, alternating")
    t_rates, o_rates = [], []
    for r in range(a.rounds):
        t_rates.append(torch_round(Llama(meta, w, 8, 16, 42), data, a.steps, a.lr))
        o_rates.append(owl_round(a.owl, a.model, subset, a.steps, a.lr, a.threads))
        print(f"round {r + 1}: PyTorch {t_rates[-1]:8.0f} tokens/s   owl {o_rates[-1]:8.0f} tokens/s")
    os.unlink(subset)
    t, o = statistics.median(t_rates), statistics.median(o_rates)
    print(f"median:  PyTorch {t:8.0f} tokens/s   owl {o:8.0f} tokens/s   owl / PyTorch {o / t:.2f}x")
    if a.peak_gflops > 0:
        for name, rate in (("PyTorch", t), ("owl", o)):
            print(f"{name}: {rate * flops_per_token / 1e9:.2f} GFLOP/s, {100 * rate * flops_per_token / 1e9 / a.peak_gflops:.2f}% "
                  f"of {a.peak_gflops:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
