// Python str methods on UTF-8 text, as templates use them: strip/split with Python's notion of
// whitespace, case mapping (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic), title().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace owl::tmpl {

std::vector<uint32_t> decode_utf8(std::string_view s);  // invalid bytes map to U+FFFD
std::string encode_utf8(const std::vector<uint32_t>& cps);
void append_code_point(std::string& out, uint32_t cp);  // as UTF-8
void append_code_point(std::string& out, uint32_t cp);

bool py_isspace(uint32_t cp);
bool py_isalpha(uint32_t cp);
bool py_isalnum(uint32_t cp);
uint32_t py_lower(uint32_t cp);
uint32_t py_upper(uint32_t cp);  // single code point mapping (ß stays ß)

enum class StripSide { Both, Left, Right };
// str.strip()/lstrip()/rstrip(): whitespace when `chars` is empty/nullopt, else any of `chars`.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side);
// str.split(sep, maxsplit) / rsplit: whitespace splitting when `sep` is nullopt.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::string py_replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count);
std::string py_lower_str(std::string_view s);
std::string py_upper_str(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string jinja_title(std::string_view s);    // the `title` filter: words split on -, space, ( { [ <
// str.splitlines() (without keepends).
std::vector<std::string> py_splitlines(std::string_view s);

}  // namespace owl::tmpl
