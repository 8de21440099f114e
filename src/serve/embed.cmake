# Writes a C++ source that holds a file's bytes: cmake -DIN=file -DOUT=file.cpp -DNAME=symbol -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n_bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
  "// Generated from ${IN} by embed.cmake; do not edit.\n"
  "#include <string_view>\n\n"
  "namespace owl::serve {\n"
  "namespace {\n"
  "const unsigned char k_data[] = {\n${bytes}0};\n"
  "}  // namespace\n"
  "std::string_view ${NAME}() { return {reinterpret_cast<const char*>(k_data), ${n_bytes}}; }\n"
  "}  // namespace owl::serve\n")
file(RENAME "${OUT}.tmp" "${OUT}")
