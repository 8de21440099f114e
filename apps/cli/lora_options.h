// --lora FILE and --lora-scaled FILE SCALE, as llama.cpp names and means them, for the commands
// that run a model (run, chat, logits, bench) and for owl merge: each adapter with the user's
// scale; the factor applied is scale × alpha / rank (model/adapter.h).
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/result.h"
#include "model/adapter.h"
#include "model/model.h"

namespace owl::cli {

struct LoraSpec {
  std::string path;
  float scale = 1.0f;
};

struct LoraArgs {
  std::vector<std::string> files;                            // --lora, in the order given
  std::vector<std::pair<std::string, std::string>> scaled;   // --lora-scaled FILE SCALE, SCALE unparsed
  bool scale_suffix = false;                                 // --lora FILE[:SCALE] (owl merge)
  std::vector<LoraSpec> specs;                               // all of them, checked (finish_lora_args)
};

inline void add_lora_options(CLI::App* app, LoraArgs& a, bool scale_suffix = false) {
  a.scale_suffix = scale_suffix;
  app->add_option("--lora", a.files,
                  scale_suffix ? "LoRA adapter FILE[:SCALE] (GGUF) folded into the weights, scale 1 unless given (repeatable)"
                               : "LoRA adapter (GGUF) applied at scale 1 (repeatable)");
  app->add_option("--lora-scaled", a.scaled, "LoRA adapter FILE applied at SCALE (repeatable)")
      ->type_name("FILE SCALE");
}

// A user scale: a finite number, written in full.
inline core::Result<float> parse_lora_scale(const std::string& text, const std::string& option) {
  errno = 0;
  char* end = nullptr;
  const double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v) ||
      std::fabs(v) > 3.4e38) {
    return core::make_error("{}: scale '{}' is not a finite number", option, text);
  }
  return static_cast<float>(v);
}

// Parses the scales (an error names the option and the value); no file is read yet.
inline core::Status finish_lora_args(LoraArgs& a) {
  a.specs.clear();
  for (const std::string& item : a.files) {
    LoraSpec spec{.path = item};
    // FILE:SCALE unless the whole text names a file or what follows the last ':' is a path.
    const size_t colon = item.rfind(':');
    std::error_code ec;
    if (a.scale_suffix && colon != std::string::npos && item.find('/', colon) == std::string::npos &&
        !std::filesystem::exists(item, ec)) {
      auto scale = parse_lora_scale(item.substr(colon + 1), "--lora " + item);
      if (!scale) return scale.error();
      spec = {.path = item.substr(0, colon), .scale = *scale};
    }
    if (spec.path.empty()) return core::make_error("--lora '{}': no file", item);
    a.specs.push_back(std::move(spec));
  }
  for (const auto& [file, text] : a.scaled) {
    auto scale = parse_lora_scale(text, "--lora-scaled " + file);
    if (!scale) return scale.error();
    if (file.empty()) return core::make_error("--lora-scaled: no file");
    a.specs.push_back({.path = file, .scale = *scale});
  }
  return {};
}

// The adapters as one set for `model` (null when none was given); a file named twice is read
// once and applied once per naming. Errors name the file (load_lora).
inline core::Result<std::shared_ptr<const model::AdapterSet>> load_adapters(const std::vector<LoraSpec>& specs,
                                                                            const model::Model& model) {
  if (specs.empty()) return std::shared_ptr<const model::AdapterSet>();
  auto set = std::make_shared<model::AdapterSet>();
  std::map<std::string, std::shared_ptr<const model::Adapter>> loaded;
  for (const LoraSpec& spec : specs) {
    auto& adapter = loaded[spec.path];
    if (!adapter) {
      auto read = model::load_lora(spec.path, model);
      if (!read) return read.error();
      adapter = std::move(*read);
    }
    set->adapters.emplace_back(adapter, spec.scale);
  }
  return std::shared_ptr<const model::AdapterSet>(std::move(set));
}

// "a.gguf (scale 1, alpha/rank 2), b.gguf (scale 0.5, alpha/rank 1)": each adapter as given, in
// the order applied.
inline std::string describe_adapters(const std::vector<LoraSpec>& specs, const model::AdapterSet& set) {
  std::string text;
  for (size_t i = 0; i < specs.size() && i < set.adapters.size(); ++i) {
    text += fmt::format("{}{} (scale {:g}, alpha/rank {:g})", i ? ", " : "", specs[i].path, specs[i].scale,
                        set.adapters[i].first->alpha_scale);
  }
  return text;
}

// The one line a command prints on stderr about the adapters it applies.
inline void note_adapters(const char* command, const std::vector<LoraSpec>& specs, const model::AdapterSet* set) {
  if (set == nullptr || set->adapters.empty()) return;
  fmt::print(stderr, "{}: LoRA adapter{}: {}\n", command, set->adapters.size() > 1 ? "s" : "",
             describe_adapters(specs, *set));
}

}  // namespace owl::cli
