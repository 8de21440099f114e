// owl inspect MODEL [--json]: what a GGUF file holds, from its header.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common_options.h"
#include "format.h"
#include "gguf/gguf.h"
#include "gguf/keys.h"
#include "model/model_info.h"

namespace owl::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool all_metadata = false;
  int64_t n_ctx = 0;  // 0: the model's context length
};

using Config = model::ModelConfig;

// A hyper-parameter of the configuration owl runs the model with; nullopt when it does not.
std::optional<int64_t> hparam(const model::ModelInfo& info, int64_t Config::*field) {
  return info.config ? std::optional<int64_t>((*info.config).*field) : std::nullopt;
}

// MemAvailable from /proc/meminfo, in bytes; 0 when unknown.
uint64_t available_memory() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof(line), f)) {
    if (std::sscanf(line, "MemAvailable: %lu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024;
}

nlohmann::json to_json(const model::ModelInfo& info, const gguf::GgufFile& file, const model::MemoryEstimate& mem) {
  nlohmann::json j;
  j["path"] = info.path;
  j["file_size"] = info.file_size;
  j["gguf_version"] = info.gguf_version;
  j["architecture"] = info.architecture;
  j["name"] = info.name;
  j["license"] = info.license;
  auto optional = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  j["context_length"] = optional(hparam(info, &Config::n_ctx_train));
  j["n_embd"] = optional(hparam(info, &Config::n_embd));
  j["n_layer"] = optional(hparam(info, &Config::n_layer));
  j["n_head"] = optional(hparam(info, &Config::n_head));
  j["n_head_kv"] = optional(hparam(info, &Config::n_head_kv));
  j["n_ff"] = optional(hparam(info, &Config::n_ff));
  j["n_params"] = info.n_params;
  j["n_tensors"] = info.n_tensors;
  j["tensor_bytes"] = info.tensor_bytes;
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [name, usage] : info.types) {
    types[name] = {{"tensors", usage.tensors}, {"elements", usage.elements}, {"bytes", usage.bytes}};
  }
  j["tensor_types"] = types;
  j["tokenizer"] = {{"model", info.tokenizer_model},
                    {"kind", info.tokenizer_kind},
                    {"pre", info.tokenizer_pre},
                    {"vocab_size", info.vocab_size}};
  j["chat_template"] = info.has_chat_template;
  j["memory"] = {{"n_ctx", mem.n_ctx},
                 {"weights", mem.weights},
                 {"kv_cache", mem.kv_cache},
                 {"activations", mem.activations},
                 {"total", mem.total()},
                 {"available", available_memory()}};
  nlohmann::json metadata = nlohmann::json::object();
  for (const gguf::MetadataEntry& e : file.metadata()) metadata[e.key] = e.value.to_display();
  j["metadata"] = metadata;
  return j;
}

void print_text(const model::ModelInfo& info, const gguf::GgufFile& file, const model::MemoryEstimate& mem,
                bool all_metadata) {
  auto row = [](std::string_view label, const std::string& value) {
    fmt::print("{:<15}{}\n", label, value);
  };
  auto opt = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
  row("model", info.path);
  row("file size", fmt::format("{} ({} bytes), GGUF v{}", human_bytes(info.file_size), info.file_size,
                               info.gguf_version));
  row("architecture", info.architecture.empty() ? "-" : info.architecture);
  row("name", info.name.empty() ? "-" : info.name);
  row("license", info.license.empty() ? "-" : info.license);
  row("parameters", fmt::format("{} ({})", human_count(info.n_params), info.n_params));
  row("context", opt(hparam(info, &Config::n_ctx_train)));
  row("shape", fmt::format("n_embd {}, n_layer {}, n_head {}, n_head_kv {}, n_ff {}{}",
                           opt(hparam(info, &Config::n_embd)), opt(hparam(info, &Config::n_layer)),
                           opt(hparam(info, &Config::n_head)), opt(hparam(info, &Config::n_head_kv)),
                           opt(hparam(info, &Config::n_ff)), info.config ? "" : " (" + info.config_error + ")"));
  row("tensors", fmt::format("{} ({})", info.n_tensors, human_bytes(info.tensor_bytes)));
  for (const auto& [name, usage] : info.types) {
    row("", fmt::format("{:<6} {:>4} tensors {:>12} params {:>10}", name, usage.tensors,
                        human_count(usage.elements), human_bytes(usage.bytes)));
  }
  std::string tokenizer = info.tokenizer_kind;
  if (!info.tokenizer_pre.empty()) tokenizer += ", pre " + info.tokenizer_pre;
  tokenizer += fmt::format(", {} tokens", info.vocab_size);
  row("tokenizer", tokenizer);
  row("chat template", info.has_chat_template ? "yes" : "no");
  const uint64_t available = available_memory();
  std::string verdict;
  if (available > 0) {
    verdict = fmt::format("; {} available: {}", human_bytes(available), mem.total() <= available ? "fits" : "does NOT fit");
  }
  row("memory", fmt::format("{} at context {}: weights {} + KV cache {} (f16) + activations {}{}",
                            human_bytes(mem.total()), mem.n_ctx,
                  human_bytes(mem.weights), human_bytes(mem.kv_cache), human_bytes(mem.activations), verdict));
  fmt::print("metadata ({} keys)\n", file.metadata().size());
  for (const gguf::MetadataEntry& e : file.metadata()) {
    const bool long_array = e.value.type == gguf::ValueType::ARRAY && e.value.as_array()->items.size() > 8;
    if (!all_metadata && long_array) {
      fmt::print("  {:<44} [{} x {}]\n", e.key, e.value.as_array()->items.size(),
                 gguf::value_type_name(e.value.as_array()->element_type));
    } else {
      fmt::print("  {:<44} {}\n", e.key, e.value.to_display(all_metadata ? SIZE_MAX : 8));
    }
  }
}

// One line on stderr when the file is not a model owl (or llama.cpp) runs: an adapter, a
// vocabulary-only file, an importance matrix, or a model whose configuration is incomplete.
void warn_unless_runnable(const model::ModelInfo& info, const gguf::GgufFile& file) {
  std::string why;
  if (auto type = file.get_string(gguf::keys::kGeneralType); type && *type != "model") {
    why = fmt::format("{} is '{}'", gguf::keys::kGeneralType, *type);
  }
  if (why.empty() && file.tensors().empty()) why = "it holds no tensors (a vocabulary-only file)";
  if (why.empty() && !info.config) why = info.config_error;
  if (!why.empty()) fmt::print(stderr, "owl inspect: warning: {} is not a model that runs: {}\n", info.path, why);
}

int run_inspect(const InspectOptions& options) {
  auto file = gguf::GgufFile::open(options.model);
  if (!file) {
    fmt::print(stderr, "owl inspect: {}\n", file.message());
    return 1;
  }
  const model::ModelInfo info = model::describe_model(*file);
  warn_unless_runnable(info, *file);
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : hparam(info, &Config::n_ctx_train).value_or(2048);
  const model::MemoryEstimate mem = model::estimate_memory(info, n_ctx);
  if (options.json) {
    fmt::print("{}\n", to_json(info, *file, mem).dump(2));
  } else {
    print_text(info, *file, mem, options.all_metadata);
  }
  return 0;
}

}  // namespace

Command register_inspect(CLI::App& root) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* app = root.add_subcommand("inspect", "Show what a GGUF model holds: architecture, size, types, tokenizer");
  app->add_option("model", options->model, "GGUF model file")->required();
  app->add_flag("--json", options->json, "Print JSON instead of text");
  app->add_flag("--all", options->all_metadata, "Print every metadata value in full");
  app->add_option("-c,--ctx-size,--ctx", options->n_ctx, "Context length for the memory estimate (0: the model's)")
      ->check(CLI::Range(int64_t{0}, kMaxCtx));
  return {app, [options] { return run_inspect(*options); }};
}

}  // namespace owl::cli
