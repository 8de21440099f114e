// libFuzzer target: any bytes tokenize (with and without special tokens) into valid ids on an SPM
// and a byte-level BPE vocabulary built in memory; pieces, detokenization and the streaming
// detokenizer accept every id; valid UTF-8 round-trips through the BPE pieces.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokenizer/tokenizer.h"

namespace {

using owl::tokenizer::Tokenizer;
using owl::tokenizer::VocabSpec;

Tokenizer make_spm() {
  VocabSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>", "[U]"};
  spec.token_types = {2, 3, 3, 4};
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    spec.token_types.push_back(6);
  }
  for (const char* piece : {"\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "a", "\xE2\x96\x81\xE2\x96\x81", "ba"}) {
    spec.tokens.push_back(piece);
    spec.token_types.push_back(1);
  }
  for (size_t i = 0; i < spec.tokens.size(); ++i) spec.scores.push_back(-static_cast<float>(i % 7));
  return *Tokenizer::make(spec);
}

Tokenizer make_bpe() {
  VocabSpec spec;
  spec.model = "gpt2";
  spec.pre = "llama3";
  const char* extra[] = {"<|eot|>", "\xC4\xA0" "a", "ab", "\xC4\xA0" "ab"};
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    // GPT-2's byte alphabet.
    const bool direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cpt = direct ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    std::string s;
    if (cpt < 0x80) {
      s.push_back(static_cast<char>(cpt));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
      s.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    }
    spec.tokens.push_back(s);
    spec.token_types.push_back(1);
  }
  for (const char* t : extra) {
    spec.tokens.push_back(t);
    spec.token_types.push_back(spec.tokens.back() == "<|eot|>" ? 3 : 1);
  }
  spec.merges = {"\xC4\xA0 a", "a b", "\xC4\xA0" "a b", "b a"};
  spec.bos = 0;
  return *Tokenizer::make(spec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizer spm = make_spm();
  static const Tokenizer bpe = make_bpe();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const Tokenizer* tok : {&spm, &bpe}) {
    for (bool parse : {false, true}) {
      const auto ids = tok->tokenize(text, {.add_special = true, .parse_special = parse});
      for (auto id : ids) {
        if (!tok->valid(id)) std::abort();
      }
      (void)tok->detokenize(ids, {.remove_special = parse, .unparse_special = parse});
      owl::tokenizer::Detokenizer stream(*tok);
      std::string streamed;
      for (auto id : ids) streamed += stream.push(id);
      streamed += stream.finish();
      std::string pieces;
      for (auto id : ids) pieces += tok->token_to_piece(id);
      if (streamed != pieces) std::abort();
    }
  }
  // Valid UTF-8 comes back from the BPE pieces byte for byte.
  if (owl::tokenizer::complete_utf8_prefix(text) == size) {
    bool valid = true;
    for (size_t i = 0; i < size && valid;) {
      const uint8_t b = data[i];
      const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
      if (n == 0 || i + n > size) valid = false;
      for (size_t k = 1; valid && k < n; ++k) valid = (data[i + k] & 0xC0) == 0x80;
      if (valid && n == 2 && b < 0xC2) valid = false;
      if (valid && n == 3) {
        const uint32_t cpt = ((b & 0x0Fu) << 12) | ((data[i + 1] & 0x3Fu) << 6) | (data[i + 2] & 0x3Fu);
        valid = cpt >= 0x800 && (cpt < 0xD800 || cpt > 0xDFFF);
      }
      if (valid && n == 4) {
        const uint32_t cpt = ((b & 0x07u) << 18) | ((data[i + 1] & 0x3Fu) << 12) | ((data[i + 2] & 0x3Fu) << 6) |
                             (data[i + 3] & 0x3Fu);
        valid = cpt >= 0x10000 && cpt <= 0x10FFFF;
      }
      i += n;
    }
    if (valid) {
      std::string pieces;
      for (auto id : bpe.tokenize(text, {.add_special = false})) pieces += bpe.token_to_piece(id);
      if (pieces != text) std::abort();
    }
  }
  return 0;
}
