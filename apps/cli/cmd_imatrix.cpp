// owl imatrix: an importance matrix (mean squared activation per input column of every weight
// matrix) over a calibration text, for owl quantize --imatrix.
#include <unistd.h>

#include "commands.h"
#include "core/files.h"
#include "quantize/imatrix.h"

namespace owl::cli {
namespace {

struct ImatrixArgs {
  quantize::ImatrixOptions options;
  std::string text_file;
  std::string output = "imatrix.gguf";
};

int run_imatrix(ImatrixArgs& a) {
  auto text = core::read_file(a.text_file);
  if (!text) {
    fmt::print(stderr, "owl imatrix: {}\n", text.message());
    return 1;
  }
  a.options.text = std::move(*text);
  a.options.dataset_name = a.text_file;
  if (isatty(STDERR_FILENO)) {
    a.options.on_progress = [](int64_t done, int64_t total) {
      fmt::print(stderr, "\rchunk {}/{}", done, total);
      if (done == total) fmt::print(stderr, "\n");
    };
  }
  auto result = quantize::compute_imatrix(a.options);
  if (!result) {
    fmt::print(stderr, "owl imatrix: {}\n", result.message());
    return 1;
  }
  if (auto s = quantize::save_imatrix(result->imatrix, a.output); !s) {
    fmt::print(stderr, "owl imatrix: {}\n", s.message());
    return 1;
  }
  fmt::print("wrote {}: {} matrices, {} chunks of {} tokens, perplexity {:.4f}\n", a.output,
             result->imatrix.entries.size(), result->imatrix.chunk_count, result->imatrix.chunk_size, result->perplexity);
  return 0;
}

}  // namespace

Command register_imatrix(CLI::App& root) {
  auto args = std::make_shared<ImatrixArgs>();
  quantize::ImatrixOptions& o = args->options;
  CLI::App* app = root.add_subcommand("imatrix", "Importance matrix from activations over a calibration text");
  app->add_option("-m,--model", o.model, "GGUF model")->required();
  app->add_option("-f,--file", args->text_file, "Calibration text")->required();
  app->add_option("-o,--output", args->output, "Output imatrix GGUF")->capture_default_str();
  app->add_option("--ctx", o.n_ctx, "Tokens per chunk")->capture_default_str();
  app->add_option("--chunks", o.max_chunks, "At most this many chunks (0: all)")->capture_default_str();
  app->add_option("-t,--threads", o.n_threads, "Threads (0: all cores)")->capture_default_str();
  return {app, [args] { return run_imatrix(*args); }};
}

}  // namespace owl::cli
