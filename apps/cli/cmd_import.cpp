// owl import: a Hugging Face model directory or a llama2.c checkpoint -> GGUF.
#include "commands.h"
#include "common_options.h"
#include "convert/hf.h"
#include "format.h"

namespace owl::cli {
namespace {

struct ImportArgs {
  convert::ImportOptions hf;
  std::string llama2c;
  std::string vocab_from;
};

int run_import(const ImportArgs& a) {
  if (int rc = fail_unless_writable("owl import", a.hf.output, "-o")) return rc;
  if (!a.llama2c.empty()) {
    if (a.vocab_from.empty()) {
      fmt::print(stderr, "owl import: --llama2c needs --vocab-from VOCAB.gguf\n");
      return 1;
    }
    if (auto s = convert::import_llama2c({.checkpoint = a.llama2c,
                                              .vocab_from = a.vocab_from,
                                              .output = a.hf.output,
                                              .type = a.hf.type,
                                              .n_threads = a.hf.n_threads}); !s) {
      return fail("owl import", s.message());
    }
    fmt::print("wrote {} from llama2.c checkpoint {}\n", a.hf.output, a.llama2c);
    return 0;
  }
  if (a.hf.hf_dir.empty()) {
    fmt::print(stderr, "owl import: give a Hugging Face model directory or --llama2c MODEL.bin\n");
    return 1;
  }
  auto s = convert::import_hf(a.hf);
  if (!s) {
    return fail("owl import", s.message());
  }
  fmt::print("wrote {}: {} ({} tensors, {} parameters), tokenizer {}{}, chat template {}\n", a.hf.output, s->arch,
             s->n_tensors, human_count(s->n_params), s->tokenizer, s->tokenizer == "gpt2" ? " pre " + s->pre : "",
             s->chat_template ? "yes" : "no");
  return 0;
}

}  // namespace

Command register_import(CLI::App& root) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* app = root.add_subcommand("import", "Convert a Hugging Face model directory or a llama2.c checkpoint to GGUF");
  app->add_option("hf_dir", args->hf.hf_dir, "Directory with config.json, *.safetensors, tokenizer.json");
  app->add_option("-o,--output", args->hf.output, "Output GGUF file")->required();
  app->add_option("--type", args->hf.type, "Weight type or mix of the output (f32 f16 bf16 q8_0 q4_k_m ...); default: as stored");
  app->add_option("--llama2c", args->llama2c, "llama2.c checkpoint (run.c format) instead of a directory");
  app->add_option("--vocab-from", args->vocab_from, "GGUF file whose tokenizer a llama2.c model uses");
  add_threads_option(app, args->hf.n_threads);
  return {app, [args] { return run_import(*args); }};
}

}  // namespace owl::cli
