// Reading YAML files written by users (owl serve --config, owl eval suites) with errors that name
// the file, line and key of the mistake: "owl.yaml:12: routes[0].cascade[1].model: missing".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/result.h"

namespace owl::core {

// A node and where it is, for messages. A key that is absent has its parent's line.
struct At {
  std::string_view file;
  YAML::Node node;
  std::string path;
  int parent_line = 0;

  int line() const { return node.IsDefined() ? node.Mark().line + 1 : parent_line; }
  At child(std::string_view key) const {
    return At{file, node[std::string(key)], path.empty() ? std::string(key) : path + "." + std::string(key), line()};
  }
  At item(size_t i) const { return At{file, node[i], fmt::format("{}[{}]", path, i), line()}; }
  bool present() const { return node.IsDefined() && !node.IsNull(); }

  template <typename... Args>
  Error error(fmt::format_string<Args...> format, Args&&... args) const {
    const int line = this->line();
    std::string where = line > 0 ? fmt::format("{}:{}", file, line) : std::string(file);
    return Error{fmt::format("{}: {}: {}", where, path, fmt::format(format, std::forward<Args>(args)...))};
  }
};

// The root of `yaml` (a document of `file`); a syntax error names the file and line.
Result<YAML::Node> load_yaml(std::string_view yaml, std::string_view file);

// A mapping whose keys are all among `known`.
Status only_keys(const At& at, std::initializer_list<std::string_view> known);
Result<std::string> get_string(const At& at);
Result<double> get_number(const At& at, double min, double max);
Result<int64_t> get_int(const At& at, int64_t min, int64_t max);
Result<bool> get_bool(const At& at);
// One string or a list of them.
Result<std::vector<std::string>> get_strings(const At& at);

// Reads an optional key into `out` with `get`; an absent key leaves `out` as it is.
template <typename Get, typename T>
Status read_optional(const At& at, std::string_view key, Get get, T& out) {
  const At child = at.child(key);
  if (!child.present()) return {};
  auto v = get(child);
  if (!v) return v.error();
  out = static_cast<T>(std::move(*v));
  return {};
}

inline auto number_in(double min, double max) {
  return [min, max](const At& at) { return get_number(at, min, max); };
}
inline auto int_in(int64_t min, int64_t max) {
  return [min, max](const At& at) { return get_int(at, min, max); };
}

}  // namespace owl::core
