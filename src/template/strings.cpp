#include "template/strings.h"

#include <algorithm>

namespace owl::tmpl {

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (size_t k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const std::vector<uint32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (uint32_t cp : cps) append_code_point(out, cp);
  return out;
}

bool py_isspace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

uint32_t py_lower(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp < 0x80) return cp;
  if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) return cp + 32;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 && cp != 0x17F) {
    bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (odd_upper) return (cp % 2 == 1) ? cp + 1 : cp;
    return (cp % 2 == 0) ? cp + 1 : cp;
  }
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  return cp;
}

uint32_t py_upper(uint32_t cp) {
  if (cp >= 'a' && cp <= 'z') return cp - 32;
  if (cp < 0x80) return cp;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  if (cp == 0xFF) return 0x178;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 && cp != 0x17F) {
    bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (odd_upper) return (cp % 2 == 0) ? cp - 1 : cp;
    return (cp % 2 == 1) ? cp - 1 : cp;
  }
  if (cp >= 0x3B1 && cp <= 0x3C9 && cp != 0x3C2) return cp - 32;
  if (cp == 0x3C2) return 0x3A3;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
  return cp;
}

bool py_isalpha(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (cp == 0xAA || cp == 0xB5 || cp == 0xBA) return true;
  if (cp >= 0xC0 && cp <= 0x24F) return cp != 0xD7 && cp != 0xF7;
  return py_lower(cp) != cp || py_upper(cp) != cp || (cp >= 0x3040 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3);
}

bool py_isalnum(uint32_t cp) { return py_isalpha(cp) || (cp >= '0' && cp <= '9'); }

namespace {

bool is_cased(uint32_t cp) { return py_lower(cp) != cp || py_upper(cp) != cp || cp == 0xDF; }

}  // namespace

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
  std::vector<uint32_t> cps = decode_utf8(s);
  std::vector<uint32_t> set;
  if (chars) set = decode_utf8(*chars);
  auto strip_it = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : py_isspace(cp);
  };
  size_t begin = 0, end = cps.size();
  if (side != StripSide::Right) {
    while (begin < end && strip_it(cps[begin])) ++begin;
  }
  if (side != StripSide::Left) {
    while (end > begin && strip_it(cps[end - 1])) --end;
  }
  if (begin == 0 && end == cps.size()) return std::string(s);
  return encode_utf8(std::vector<uint32_t>(cps.begin() + static_cast<std::ptrdiff_t>(begin),
                                           cps.begin() + static_cast<std::ptrdiff_t>(end)));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    const std::string& d = *sep;
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t found = s.find(d, pos);
        if (found == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, found - pos));
        pos = found + d.size();
      }
      parts.emplace_back(s.substr(pos));
      return parts;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < d.size()) break;
      size_t found = s.rfind(d, end - d.size());
      if (found == std::string_view::npos) break;
      parts.emplace_back(s.substr(found + d.size(), end - found - d.size()));
      end = found;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace: runs of whitespace separate, no empty parts, leftover keeps its inner spaces.
  std::vector<uint32_t> cps = decode_utf8(s);
  std::vector<std::pair<size_t, size_t>> words;  // [begin, end) in code points
  if (!from_right) {
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && py_isspace(cps[i])) ++i;
      if (i == cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t end = cps.size();
        while (end > i && py_isspace(cps[end - 1])) --end;
        words.emplace_back(i, end);
        break;
      }
      size_t start = i;
      while (i < cps.size() && !py_isspace(cps[i])) ++i;
      words.emplace_back(start, i);
    }
  } else {
    size_t i = cps.size();
    while (i > 0) {
      while (i > 0 && py_isspace(cps[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t begin = 0;
        while (begin < i && py_isspace(cps[begin])) ++begin;
        words.emplace_back(begin, i);
        break;
      }
      size_t end = i;
      while (i > 0 && !py_isspace(cps[i - 1])) --i;
      words.emplace_back(i, end);
    }
    std::reverse(words.begin(), words.end());
  }
  for (auto [b, e] : words) {
    parts.push_back(encode_utf8(std::vector<uint32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                                      cps.begin() + static_cast<std::ptrdiff_t>(e))));
  }
  return parts;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every code point and at the end.
    auto cps = decode_utf8(s);
    int64_t done = 0;
    for (uint32_t cp : cps) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      append_code_point(out, cp);
    }
    if (count < 0 || done < count) out += replacement;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t found = s.find(old, pos);
    if (found == std::string_view::npos) break;
    out.append(s.substr(pos, found - pos));
    out.append(replacement);
    pos = found + old.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

std::string py_lower_str(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t cp : decode_utf8(s)) append_code_point(out, py_lower(cp));
  return out;
}

std::string py_upper_str(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t cp : decode_utf8(s)) {
    if (cp == 0xDF) {
      out += "SS";
    } else {
      append_code_point(out, py_upper(cp));
    }
  }
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (uint32_t cp : decode_utf8(s)) {
    append_code_point(out, previous_cased ? py_lower(cp) : py_upper(cp));
    previous_cased = is_cased(cp);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (uint32_t cp : decode_utf8(s)) {
    append_code_point(out, first ? py_upper(cp) : py_lower(cp));
    first = false;
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  // re.split(r"([-\s({\[<]+)") then item[0].upper() + item[1:].lower() for every piece.
  auto separator = [](uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp);
  };
  std::string out;
  bool start = true;
  for (uint32_t cp : decode_utf8(s)) {
    bool sep = separator(cp);
    if (sep) {
      append_code_point(out, cp);
      start = true;
      continue;
    }
    append_code_point(out, start ? py_upper(cp) : py_lower(cp));
    start = false;
  }
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s) {
  std::vector<std::string> lines;
  std::vector<uint32_t> cps = decode_utf8(s);
  std::vector<uint32_t> current;
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t cp = cps[i];
    bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
               cp == 0x2028 || cp == 0x2029;
    if (!brk) {
      current.push_back(cp);
      continue;
    }
    if (cp == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    lines.push_back(encode_utf8(current));
    current.clear();
  }
  if (!current.empty()) lines.push_back(encode_utf8(current));
  return lines;
}

}  // namespace owl::tmpl
