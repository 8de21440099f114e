// owl export: a GGUF model -> a Hugging Face directory (safetensors, config, tokenizer).
#include <filesystem>

#include "commands.h"
#include "common_options.h"
#include "convert/hf.h"

namespace owl::cli {
namespace {

int run_export(const convert::ExportOptions& o) {
  std::error_code ec;
  if (std::filesystem::exists(o.out_dir, ec) && !std::filesystem::is_directory(o.out_dir, ec)) {
    return fail("owl export", fmt::format("-o {}: a file is there, not a directory", o.out_dir));
  }
  auto s = convert::export_hf(o);
  if (!s) return fail("owl export", s.message());
  fmt::print("wrote {}: {} ({} tensors, {})\n", o.out_dir, s->arch, s->n_tensors, s->dtype);
  return 0;
}

}  // namespace

Command register_export(CLI::App& root) {
  auto o = std::make_shared<convert::ExportOptions>();
  CLI::App* app = root.add_subcommand("export", "Write a GGUF model as a Hugging Face directory (safetensors + config + tokenizer)");
  app->add_option("model", o->model, "GGUF model")->required();
  app->add_option("-o,--output", o->out_dir, "Output directory")->required();
  app->add_option("--dtype", o->dtype, "f32, f16, bf16 or auto (the weights' own float type; F32 for quantized)")
      ->capture_default_str();
  return {app, [o] { return run_export(*o); }};
}

}  // namespace owl::cli
