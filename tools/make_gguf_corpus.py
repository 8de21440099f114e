#!/usr/bin/env python3
"""Regenerates tests/data/gguf: one small GGUF file per class of malformed input.

Each file is named <class>.gguf; tests/data/gguf/expected.txt maps it to a fragment of the
error message owl must print. valid.gguf is a well-formed file the others are derived from.
Run from the repository root: tools/make_gguf_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q4_0, T_Q8_0 = 0, 1, 2, 8


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def tensor(name, dims, ttype, offset):
    out = s(name) + struct.pack("<I", len(dims))
    for d in dims:
        out += struct.pack("<Q", d)
    return out + struct.pack("<IQ", ttype, offset)


def pad(b, a=32):
    return b + b"\0" * ((-len(b)) % a)


def gguf(kvs, tensors, data, version=3, magic=b"GGUF", n_tensors=None, n_kv=None):
    head = magic + struct.pack("<IQQ", version,
                               len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(tensors)
    return pad(head) + data


def base_kvs():
    return [
        kv("general.architecture", STRING, s("llama")),
        kv("general.name", STRING, s("corpus")),
        kv("test.u32", U32, struct.pack("<I", 7)),
        kv("test.strings", ARRAY, struct.pack("<IQ", STRING, 2) + s("a") + s("bc")),
        kv("test.nested", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", I16, 2) +
           struct.pack("<hh", -1, 2)),
    ]


def base_tensors():
    # a: 32x2 f32 (256 bytes) at 0; b: 64 q8_0 = 2 blocks (68 bytes) at 256
    return [tensor("a", [32, 2], T_F32, 0), tensor("b", [64], T_Q8_0, 256)]


def base_data():
    a = struct.pack("<64f", *[i * 0.25 for i in range(64)])
    b = (struct.pack("<e", 0.5) + bytes(range(32))) * 2
    return pad(a) + pad(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    valid = gguf(base_kvs(), base_tensors(), base_data())
    cases = {
        "valid": (valid, ""),
        "empty": (b"", "truncated at offset 0 reading magic"),
        "bad_magic": (b"GGUX" + valid[4:], "bad magic"),
        "version_1": (valid[:4] + struct.pack("<I", 1) + valid[8:], "unsupported version 1"),
        "version_99": (valid[:4] + struct.pack("<I", 99) + valid[8:], "unsupported version 99"),
        "truncated_header": (valid[:60], "truncated"),
        "truncated_data": (valid[:-40], "beyond the"),
        "huge_kv_count": (gguf(base_kvs(), base_tensors(), base_data(), n_kv=1 << 60),
                          "metadata count 1152921504606846976 cannot fit"),
        "huge_tensor_count": (gguf(base_kvs(), base_tensors(), base_data(), n_tensors=1 << 40),
                              "tensor count 1099511627776 cannot fit"),
        "huge_string": (gguf([kv("general.name", STRING, struct.pack("<Q", 1 << 40))], [], b""),
                        "string length 1099511627776"),
        "huge_array": (gguf([kv("x", ARRAY, struct.pack("<IQ", U32, 1 << 50))], [], b""),
                       "array length 1125899906842624 cannot fit"),
        "deep_array": (gguf([kv("x", ARRAY, struct.pack("<IQ", ARRAY, 1) * 12 + struct.pack("<IQ", U8, 0))], [], b""),
                       "nested deeper than"),
        "unknown_value_type": (gguf([kv("x", 13, b"\0" * 8)], [], b""), "unknown value type 13"),
        "bad_bool": (gguf([kv("x", BOOL, b"\x05")], [], b""), "invalid bool value 5"),
        "duplicate_key": (gguf(base_kvs() + [kv("test.u32", U32, struct.pack("<I", 8))], base_tensors(), base_data()),
                          "duplicate metadata key 'test.u32'"),
        "duplicate_tensor": (gguf(base_kvs(), [tensor("a", [32, 2], T_F32, 0), tensor("a", [64], T_Q8_0, 256)], base_data()),
                             "duplicate tensor name 'a'"),
        "unknown_tensor_type": (gguf(base_kvs(), [tensor("a", [32, 2], 99, 0)], base_data()),
                                "unknown tensor type 99"),
        "too_many_dims": (gguf(base_kvs(), [tensor("a", [2, 2, 2, 2, 4], T_F32, 0)], base_data()),
                          "n_dims 5 out of range"),
        "zero_dim": (gguf(base_kvs(), [tensor("a", [32, 0], T_F32, 0)], base_data()), "ne[1] = 0 out of range"),
        "element_overflow": (gguf(base_kvs(), [tensor("a", [1 << 32, 1 << 32, 1 << 32], T_F32, 0)], base_data()),
                             "element count overflows"),
        "bad_row_length": (gguf(base_kvs(), [tensor("b", [48], T_Q8_0, 0)], base_data()),
                           "row length 48 is not a multiple of the q8_0 block size 32"),
        "misaligned_offset": (gguf(base_kvs(), [tensor("a", [32, 2], T_F32, 4)], base_data()),
                              "data offset 4 is not a multiple of the alignment 32"),
        "offset_out_of_range": (gguf(base_kvs(), [tensor("a", [32, 2], T_F32, 1 << 20)], base_data()),
                                "data at offset 1048576"),
        "overlapping_tensors": (gguf(base_kvs(), [tensor("a", [32, 2], T_F32, 0), tensor("b", [64], T_Q8_0, 224)], base_data()),
                                "overlaps tensor 'a'"),
        "bad_alignment": (gguf([kv("general.alignment", U32, struct.pack("<I", 24))], [], b""),
                          "general.alignment 24 is not a power of two"),
        "alignment_wrong_type": (gguf([kv("general.alignment", U64, struct.pack("<Q", 32))], [], b""),
                                 "general.alignment has type u64"),
        "huge_tensor": (gguf(base_kvs(), [tensor("a", [1 << 40], T_F32, 0)], base_data()),
                        "exceed file size"),
    }
    with open(os.path.join(OUT, "expected.txt"), "w") as manifest:
        for name, (data, expected) in cases.items():
            with open(os.path.join(OUT, name + ".gguf"), "wb") as f:
                f.write(data)
            manifest.write(f"{name}.gguf\t{expected}\n")


if __name__ == "__main__":
    main()
