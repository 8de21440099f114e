// owl merge: LoRA adapters folded into a model's weights, written as a model that needs no adapter.
#include <unistd.h>

#include "commands.h"
#include "common_options.h"
#include "format.h"
#include "lora_options.h"
#include "quantize/merge.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl merge";

struct MergeArgs {
  std::string model;
  std::string output;
  std::string type;  // "": every tensor keeps its type
  int n_threads = 0;
  LoraArgs lora;
};

int run_merge(MergeArgs& a) {
  if (auto s = finish_lora_args(a.lora); !s) return fail(kCommand, s.message());
  if (a.lora.specs.empty()) return fail(kCommand, "no adapter: give --lora FILE[:SCALE] or --lora-scaled FILE SCALE");
  const gguf::FileTypeInfo* preset = nullptr;
  if (!a.type.empty()) {
    preset = gguf::find_file_type(a.type);
    if (preset == nullptr) {
      return fail(kCommand, fmt::format("--type: unknown type '{}' (one of: {})", a.type, file_type_names()));
    }
  }
  if (int rc = fail_unless_writable(kCommand, a.output, "-o")) return rc;
  auto model = model::load_model(a.model, {.pack_weights = false});  // read as GGUF rows
  if (!model) return fail(kCommand, model.message());
  auto adapters = load_adapters(a.lora.specs, **model);
  if (!adapters) return fail(kCommand, adapters.message());
  note_adapters(kCommand, a.lora.specs, adapters->get());
  quantize::MergeOptions o{
      .base = model->get(), .adapters = adapters->get(), .output = a.output, .n_threads = a.n_threads};
  if (preset != nullptr) o.preset = *preset;
  if (isatty(STDERR_FILENO)) o.on_progress = draw_tensor_progress;
  auto summary = quantize::merge_lora(o);
  if (!summary) return fail(kCommand, summary.message());
  fmt::print("wrote {}: {} tensors, {} merged with the adapters", a.output, summary->n_tensors, summary->n_merged);
  if (preset != nullptr) fmt::print(", {} others converted ({} mix)", summary->n_converted, preset->name);
  fmt::print("; file {}, {:.2f} s\n", human_bytes(summary->output_file_size), summary->seconds);
  return 0;
}

}  // namespace

Command register_merge(CLI::App& root) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* app = root.add_subcommand("merge", "Fold LoRA adapters into a model's weights: a GGUF model that needs no adapter");
  app->add_option("-m,--model", args->model, "Base GGUF model")->required();
  add_lora_options(app, args->lora, true);
  app->add_option("-o,--output", args->output, "Output GGUF file")->required();
  app->add_option("--type", args->type,
                  "Output type mix, as owl quantize takes it (default: each tensor keeps the base's type): " +
                      file_type_names());
  add_threads_option(app, args->n_threads);
  return {app, [args] { return run_merge(*args); }};
}

}  // namespace owl::cli
