// owl synth: a random-weight model of any llama shape in any weight format.
#include "commands.h"
#include "common_options.h"
#include "convert/synth.h"
#include "format.h"
#include "gguf/gguf.h"
#include "quant/traits.h"

namespace owl::cli {
namespace {

// "f32 f16 ... q6_k": the types owl writes weights in.
std::string weight_type_names() {
  std::string names;
  for (const quant::FormatTraits& t : quant::all_format_traits()) {
    if (t.weight) names += std::string(names.empty() ? "" : " ") + std::string(t.info().name);
  }
  return names;
}

struct SynthArgs {
  convert::SynthOptions options;
  std::string type = "q4_0";
};

int run_synth(SynthArgs& args) {
  auto type = gguf::type_from_name(args.type);
  if (!type) {
    fmt::print(stderr, "owl synth: unknown --type '{}'\n", args.type);
    return 1;
  }
  args.options.type = *type;
  if (int rc = fail_unless_writable("owl synth", args.options.output, "-o")) return rc;
  if (auto status = convert::synthesize_model(args.options); !status) {
    fmt::print(stderr, "owl synth: {}\n", status.message());
    return 1;
  }
  auto file = gguf::GgufFile::open(args.options.output);
  if (!file) {
    fmt::print(stderr, "owl synth: {}\n", file.message());
    return 1;
  }
  int64_t n_params = 0;
  for (const gguf::TensorInfo& t : file->tensors()) n_params += t.n_elements();
  fmt::print("wrote {}: {} parameters, {}\n", args.options.output, human_count(n_params),
             human_bytes(file->file_size()));
  return 0;
}

}  // namespace

Command register_synth(CLI::App& root) {
  auto args = std::make_shared<SynthArgs>();
  convert::SynthOptions& o = args->options;
  CLI::App* app = root.add_subcommand("synth", "Write a random-weight model of any shape, for benchmarks and tests");
  app->add_option("--arch", o.arch, "Architecture")->capture_default_str();
  app->add_option("--n-embd", o.n_embd, "Embedding width")->required();
  app->add_option("--n-layer", o.n_layer, "Number of layers")->required();
  app->add_option("--n-head", o.n_head, "Attention heads")->required();
  app->add_option("--n-head-kv", o.n_head_kv, "Key/value heads (GQA)")->required();
  app->add_option("--n-ff", o.n_ff, "Feed-forward width")->required();
  app->add_option("--n-ctx", o.n_ctx, "Context length written to the metadata")->capture_default_str();
  app->add_option("--n-vocab", o.n_vocab, "Vocabulary size when --vocab-from is not given")->capture_default_str();
  app->add_option("--vocab-from", o.vocab_from, "Copy the tokenizer from this GGUF file");
  app->add_option("--type", args->type, "Weight type: " + weight_type_names())
      ->capture_default_str();
  app->add_option("-o,--output", o.output, "Output GGUF file")->required();
  app->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app->add_option("-t,--threads", o.n_threads, "Threads")->capture_default_str();
  return {app, [args] { return run_synth(*args); }};
}

}  // namespace owl::cli
