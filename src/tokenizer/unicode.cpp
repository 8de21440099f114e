#include "tokenizer/unicode.h"

#include <cstring>

namespace owl::tokenizer {

void append_utf8(uint32_t cpt, std::string& out) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

bool decode_utf8(std::string_view text, size_t& pos, uint32_t& cpt) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const auto cont = [&](size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    cpt = b0;
    pos += 1;
    return true;
  }
  if (!(b0 & 0x40)) return false;
  if (!(b0 & 0x20)) {
    if (!cont(pos + 1)) return false;
    cpt = ((b0 & 0x1Fu) << 6) | (byte(pos + 1) & 0x3Fu);
    pos += 2;
    return true;
  }
  if (!(b0 & 0x10)) {
    if (!cont(pos + 1) || !cont(pos + 2)) return false;
    cpt = ((b0 & 0x0Fu) << 12) | ((byte(pos + 1) & 0x3Fu) << 6) | (byte(pos + 2) & 0x3Fu);
    pos += 3;
    return true;
  }
  if (!(b0 & 0x08)) {
    if (!cont(pos + 1) || !cont(pos + 2) || !cont(pos + 3)) return false;
    cpt = ((b0 & 0x07u) << 18) | ((byte(pos + 1) & 0x3Fu) << 12) | ((byte(pos + 2) & 0x3Fu) << 6) |
          (byte(pos + 3) & 0x3Fu);
    pos += 4;
    return true;
  }
  return false;
}

namespace {

// Re-encodes [0, size) into `out`; each malformed byte becomes U+FFFD.
void rewrite_for_bpe(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size() + 16);
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cpt = 0;
    if (!decode_utf8(text, pos, cpt)) {
      ++pos;
      cpt = kReplacementChar;
    } else if (cpt > 0x10FFFF) {
      cpt = kReplacementChar;
    }
    append_utf8(cpt, out);
  }
}

}  // namespace

bool normalize_for_bpe(std::string_view text, std::string& out) {
  // Fast check: a sequence needs rewriting when malformed, overlong or above U+10FFFF.
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t start = pos;
    uint32_t cpt = 0;
    if (!decode_utf8(text, pos, cpt)) break;
    const size_t len = pos - start;
    const bool shortest = (len == 2 && cpt >= 0x80) || (len == 3 && cpt >= 0x800) ||
                          (len == 4 && cpt >= 0x10000 && cpt <= 0x10FFFF);
    if (!shortest) {
      pos = start;
      break;
    }
  }
  if (pos >= text.size()) return false;
  rewrite_for_bpe(text, out);
  return true;
}

bool mask_surrogates(std::string_view text, std::string& out) {
  bool found = false;
  for (size_t i = 0; i + 2 < text.size(); ++i) {
    if (static_cast<uint8_t>(text[i]) == 0xED && (static_cast<uint8_t>(text[i + 1]) & 0xE0) == 0xA0) {
      if (!found) out.assign(text.data(), text.size());
      found = true;
      out[i] = '\xEF';
      out[i + 1] = '\xBF';
      out[i + 2] = '\xBD';
      i += 2;
    }
  }
  return found;
}

namespace {

ByteAlphabet make_byte_alphabet() {
  ByteAlphabet a{};
  for (int16_t& b : a.byte_of) b = -1;
  uint32_t cpt_of[256];
  bool direct[256] = {};
  for (int b = 0x21; b <= 0x7E; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cpt_of[b] = direct[b] ? static_cast<uint32_t>(b) : next++;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(cpt_of[b], s);
    std::memcpy(a.utf8[b], s.data(), s.size());
    a.utf8_len[b] = static_cast<uint8_t>(s.size());
    a.byte_of[cpt_of[b]] = static_cast<int16_t>(b);
  }
  return a;
}

const char kHex[] = "0123456789abcdef";

}  // namespace

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet = make_byte_alphabet();
  return alphabet;
}

void decode_byte_level(std::string_view token_text, std::string& out) {
  const ByteAlphabet& a = byte_alphabet();
  size_t pos = 0;
  while (pos < token_text.size()) {
    uint32_t cpt = 0;
    if (!decode_utf8(token_text, pos, cpt)) {
      ++pos;
      cpt = kReplacementChar;
    }
    if (cpt < 0x144 && a.byte_of[cpt] >= 0) {
      out.push_back(static_cast<char>(a.byte_of[cpt]));
      continue;
    }
    std::string utf8;
    append_utf8(cpt, utf8);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) {
      out.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
      out.push_back(kHex[static_cast<uint8_t>(c) & 15]);
    }
    out += token_text;
    out += "]";
  }
}

}  // namespace owl::tokenizer
