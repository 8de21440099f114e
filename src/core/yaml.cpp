#include "core/yaml.h"

#include <cmath>

#include <fmt/ranges.h>

namespace owl::core {

Result<YAML::Node> load_yaml(std::string_view yaml, std::string_view file) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return make_error("{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
}

Status only_keys(const At& at, std::initializer_list<std::string_view> known) {
  if (!at.present()) return at.error("missing");
  if (!at.node.IsMap()) return at.error("expected a mapping (key: value)");
  for (const auto& kv : at.node) {
    const std::string key = kv.first.as<std::string>();
    bool ok = false;
    for (std::string_view k : known) ok = ok || k == key;
    if (!ok) {
      At where = at.child(key);
      where.node = kv.first;  // the key's line, not its value's
      return where.error("unknown key (known here: {})", fmt::join(known, ", "));
    }
  }
  return {};
}

Result<std::string> get_string(const At& at) {
  if (!at.present()) return at.error("missing");
  if (!at.node.IsScalar()) return at.error("expected a string");
  return at.node.as<std::string>();
}

Result<double> get_number(const At& at, double min, double max) {
  if (!at.present()) return at.error("missing");
  if (!at.node.IsScalar()) return at.error("expected a number");
  double v = 0;
  if (!YAML::convert<double>::decode(at.node, v) || !std::isfinite(v)) return at.error("'{}' is not a number", at.node.as<std::string>());
  if (v < min || v > max) return at.error("{} out of range {}..{}", v, min, max);
  return v;
}

Result<int64_t> get_int(const At& at, int64_t min, int64_t max) {
  if (!at.node.IsScalar()) return at.error("expected an integer");
  int64_t v = 0;
  if (!YAML::convert<int64_t>::decode(at.node, v)) return at.error("'{}' is not an integer", at.node.as<std::string>());
  if (v < min || v > max) return at.error("{} out of range {}..{}", v, min, max);
  return v;
}

Result<bool> get_bool(const At& at) {
  bool v = false;
  if (!at.node.IsScalar() || !YAML::convert<bool>::decode(at.node, v)) return at.error("expected true or false");
  return v;
}

Result<std::vector<std::string>> get_strings(const At& at) {
  if (!at.present()) return at.error("missing");
  if (at.node.IsScalar()) return std::vector<std::string>{at.node.as<std::string>()};
  if (!at.node.IsSequence()) return at.error("expected a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < at.node.size(); ++i) {
    auto s = get_string(at.item(i));
    if (!s) return s.error();
    out.push_back(std::move(*s));
  }
  return out;
}

}  // namespace owl::core
