// UTF-8 helpers with llama.cpp's exact conventions (src/unicode.cpp), which decide token ids:
// how a malformed byte is read, and GPT-2's byte <-> code point map for byte-level BPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace owl::tokenizer {

inline constexpr uint32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 '▁', SentencePiece's space

// Length of the sequence a lead byte announces, from its high nibble alone (continuation and
// invalid bytes count 1): llama.cpp's unicode_len_utf8. Callers clamp it to the bytes left.
inline size_t utf8_seq_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

void append_utf8(uint32_t cpt, std::string& out);

// Decodes one code point at `pos` the way llama.cpp's unicode_cpt_from_utf8 does (no check for
// overlong forms or surrogates); returns false for a malformed sequence. Advances `pos` on success.
bool decode_utf8(std::string_view text, size_t& pos, uint32_t& cpt);

// The text byte-level BPE sees: llama.cpp decodes to code points (a malformed byte becomes
// U+FFFD) and re-encodes. Returns false, leaving `out` alone, when that changes nothing (valid
// UTF-8, the common case). Code points above U+10FFFF (which llama.cpp cannot re-encode) become
// U+FFFD too.
bool normalize_for_bpe(std::string_view text, std::string& out);

// Replaces each UTF-16 surrogate (ED A0..BF xx), which llama.cpp passes through but PCRE2 rejects,
// by U+FFFD of the same length. Returns false when there is none.
bool mask_surrogates(std::string_view text, std::string& out);

// GPT-2's byte-level alphabet: every byte maps to one printable code point ('!'..'~', '¡'..'¬',
// '®'..'ÿ' map to themselves, the other 68 bytes to U+0100.. in order).
struct ByteAlphabet {
  char utf8[256][3];      // the code point of each byte, UTF-8 encoded
  uint8_t utf8_len[256];  // 1 or 2
  int16_t byte_of[0x144];  // code point -> byte, -1 when the code point is not in the alphabet
};
const ByteAlphabet& byte_alphabet();

// Decodes a byte-level BPE token text back to bytes (llama.cpp's llama_decode_text, including its
// "[UNK_BYTE_0x..]" marker for a code point outside the alphabet).
void decode_byte_level(std::string_view token_text, std::string& out);

// ASCII isspace (C locale), as llama.cpp's lstrip/rstrip of special tokens uses.
inline bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace owl::tokenizer
