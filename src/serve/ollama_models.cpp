// Ollama's descriptions of a model (/api/tags, /api/ps, /api/show), read from its GGUF header.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "gguf/file_type.h"
#include "gguf/keys.h"
#include "model/model_info.h"
#include "serve/ollama.h"

namespace owl::serve {
namespace {

namespace keys = gguf::keys;

// Ollama's format.HumanNumber: 8030261248 -> "8.0B", 6740000 -> "6.74M", 260000 -> "260K".
std::string human_number(uint64_t n) {
  const auto scaled = [](uint64_t v, double unit, const char* suffix, int decimals) {
    const double x = static_cast<double>(v) / unit;
    return x == std::floor(x) ? fmt::format("{:.0f}{}", x, suffix) : fmt::format("{:.{}f}{}", x, decimals, suffix);
  };
  if (n >= 1000000000) return scaled(n, 1e9, "B", 1);
  if (n >= 1000000) return scaled(n, 1e6, "M", 2);
  if (n >= 1000) return fmt::format("{:.0f}K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// "Q4_K_M": general.file_type when it names one of llama.cpp's file types, else the type that
// holds most of the weights' bytes.
std::string quantization_level(const gguf::GgufFile& file, const model::ModelInfo& info) {
  if (const gguf::Value* v = file.find(keys::kGeneralFileType)) {
    if (const auto n = v->as_int()) {
      for (const gguf::FileTypeInfo& f : gguf::file_types()) {
        if (static_cast<int64_t>(f.file_type) == *n) return upper(f.name);
      }
    }
  }
  std::string best;
  uint64_t best_bytes = 0;
  for (const auto& [name, usage] : info.types) {
    if (usage.bytes > best_bytes) best = name, best_bytes = usage.bytes;
  }
  return upper(best);
}

Json details(const router::ModelInfo& model) {
  Json d = {{"parent_model", ""}, {"format", "gguf"}, {"family", ""}, {"families", nullptr},
            {"parameter_size", ""}, {"quantization_level", ""}};
  if (model.file == nullptr) {
    d["format"] = "";
    return d;
  }
  const model::ModelInfo info = model::describe_model(*model.file);
  d["family"] = info.architecture;
  d["families"] = Json::array({info.architecture});
  d["parameter_size"] = human_number(static_cast<uint64_t>(info.n_params));
  d["quantization_level"] = quantization_level(*model.file, info);
  return d;
}

// The file's modification time; the time the model was served from when there is no file.
std::string modified_at(const router::ModelInfo& model) {
  struct stat st {};
  if (model.file != nullptr && ::stat(model.file->path().c_str(), &st) == 0) {
    const auto t = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
    return rfc3339(std::chrono::time_point_cast<std::chrono::system_clock::duration>(t));
  }
  return rfc3339(std::chrono::system_clock::from_time_t(static_cast<std::time_t>(model.created)));
}

Json metadata_value(const gguf::Value& v, bool verbose) {
  if (const gguf::Array* a = v.as_array()) {
    Json out = Json::array();
    if (!verbose && a->items.size() > 5) return out;  // as Ollama: the vocabulary only when verbose
    for (const gguf::Value& item : a->items) out.push_back(metadata_value(item, verbose));
    return out;
  }
  return std::visit(
      [](const auto& x) -> Json {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, gguf::Array>) {
          return nullptr;
        } else {
          return Json(x);
        }
      },
      v.data);
}

// A Modelfile that says what the server runs: the file (its name, not where the server keeps it)
// and its context.
std::string modelfile(const router::ModelInfo& model) {
  std::string out = fmt::format("# Modelfile of '{}', as owl serves it\n", ollama_name(model.id));
  if (model.file != nullptr) out += fmt::format("FROM {}\n", std::filesystem::path(model.file->path()).filename().string());
  if (model.n_ctx > 0) out += fmt::format("PARAMETER num_ctx {}\n", model.n_ctx);
  return out;
}

}  // namespace

std::string ollama_name(std::string_view id) {
  const size_t colon = id.rfind(':');
  if (colon != std::string_view::npos && id.find('/', colon) == std::string_view::npos) return std::string(id);
  return std::string(id) + ":latest";
}

Json ollama_tags_entry(const router::ModelInfo& model) {
  const std::string name = ollama_name(model.id);
  return {{"name", name},
          {"model", name},
          {"modified_at", modified_at(model)},
          {"size", model.file != nullptr ? model.file->file_size() : 0},
          {"digest", ""},
          {"details", details(model)}};
}

Json ollama_ps_entry(const router::ModelInfo& model, int64_t kv_bytes) {
  // owl keeps its models loaded while it serves: a century ahead (Ollama's "forever" is the
  // longest duration it can add, some 292 years).
  const auto forever = std::chrono::system_clock::now() + std::chrono::hours(24 * 36525);
  const std::string name = ollama_name(model.id);
  const uint64_t weights = model.file != nullptr ? model.file->file_size() : 0;
  return {{"name", name},
          {"model", name},
          {"size", weights + static_cast<uint64_t>(std::max<int64_t>(0, kv_bytes))},
          {"digest", ""},
          {"details", details(model)},
          {"expires_at", rfc3339(forever)},
          {"size_vram", 0},
          {"context_length", model.n_ctx}};
}

Json ollama_show(const router::ModelInfo& model, bool verbose) {
  Json out = {{"modelfile", modelfile(model)},
              {"parameters", model.n_ctx > 0 ? fmt::format("num_ctx {}", model.n_ctx) : ""},
              {"details", details(model)},
              {"model_info", Json::object()},
              {"capabilities", Json::array({"completion", "embedding"})},
              {"modified_at", modified_at(model)}};
  if (model.file == nullptr) return out;
  Json& info = out["model_info"];
  for (const gguf::MetadataEntry& e : model.file->metadata()) info[e.key] = metadata_value(e.value, verbose);
  if (!info.contains("general.parameter_count")) {
    info["general.parameter_count"] = model::describe_model(*model.file).n_params;
  }
  if (const gguf::Value* license = model.file->find(keys::kGeneralLicense); license && license->as_string()) {
    out["license"] = *license->as_string();
  }
  return out;
}

}  // namespace owl::serve
