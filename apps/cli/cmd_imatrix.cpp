// owl imatrix: an importance matrix (mean squared activation per input column of every weight
// matrix) over a calibration text, for owl quantize --imatrix.
#include <unistd.h>

#include <limits>

#include "commands.h"
#include "common_options.h"
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
  if (int rc = fail_unless_writable("owl imatrix", a.output, "-o")) return rc;
  auto text = core::read_input(a.text_file);
  if (!text) return fail("owl imatrix", text.message());
  if (text->empty()) return fail("owl imatrix", fmt::format("-f {}: the calibration text is empty", a.text_file));
  a.options.text = std::move(*text);
  a.options.dataset_name = a.text_file;
  if (isatty(STDERR_FILENO)) {
    a.options.on_progress = draw_chunk_progress;
  }
  auto result = quantize::compute_imatrix(a.options);
  if (!result) return fail("owl imatrix", result.message());
  if (auto s = quantize::save_imatrix(result->imatrix, a.output); !s) return fail("owl imatrix", s.message());
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
  app->add_option("-f,--file", args->text_file, "Calibration text (-: standard input)")->required();
  app->add_option("-o,--output", args->output, "Output imatrix GGUF")->capture_default_str();
  app->add_option("-c,--ctx-size,--ctx", o.n_ctx, "Tokens per chunk")->check(CLI::Range(int64_t{2}, kMaxCtx))->capture_default_str();
  app->add_option("--chunks", o.max_chunks, "At most this many chunks (0: all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  add_threads_option(app, o.n_threads);
  return {app, [args] { return run_imatrix(*args); }};
}

}  // namespace owl::cli
