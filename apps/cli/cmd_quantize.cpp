// owl quantize: a model in a preset mix (q4_k_m, q8_0, ...), with an optional quality report.
#include <unistd.h>

#include <map>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "eval/compare.h"
#include "format.h"
#include "gguf/file_type.h"
#include "quantize/quantize.h"

namespace owl::cli {
namespace {

struct QuantizeArgs {
  std::string input, output, type;
  int n_threads = 0;
  std::string imatrix;
  std::vector<std::string> tensor_types;
  bool dry_run = false;
  bool allow_requantize = false;
  std::string report;
  int64_t report_ctx = 256;
};

std::string shape_text(const gguf::TensorInfo& t) {
  std::string s;
  for (int d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s;
}

void print_plan(const quantize::QuantizeSummary& s) {
  fmt::print("{:<28} {:>14}  {:>6} -> {:<6}\n", "tensor", "shape", "from", "to");
  for (const quantize::TensorPlan& p : s.plans) {
    const char* note = p.fallback ? "  (fallback: rows fit no block of the mix's type)" : p.manual ? "  (--tensor-type)" : "";
    fmt::print("{:<28} {:>14}  {:>6} -> {:<6}{}\n", p.tensor->name, shape_text(*p.tensor),
               gguf::type_info(p.tensor->type).name, gguf::type_info(p.target).name, note);
  }
}

void print_summary(const QuantizeArgs& a, const quantize::QuantizeSummary& s) {
  std::map<std::string, int> counts;
  for (const quantize::TensorPlan& p : s.plans) ++counts[std::string(gguf::type_info(p.target).name)];
  std::string mix;
  for (const auto& [name, n] : counts) mix += fmt::format("{}{} x{}", mix.empty() ? "" : ", ", name, n);
  fmt::print("{} {} -> {}: {}\n", a.dry_run ? "would write" : "wrote", a.input, a.output, mix);
  fmt::print("tensor data {} -> {} ({:.2f} bits per weight)", human_bytes(s.input_bytes), human_bytes(s.output_bytes),
             [&] {
               int64_t n = 0;
               for (const quantize::TensorPlan& p : s.plans) n += p.tensor->n_elements();
               return n ? 8.0 * static_cast<double>(s.output_bytes) / static_cast<double>(n) : 0.0;
             }());
  if (!a.dry_run) fmt::print(", file {}, {:.2f} s", human_bytes(s.output_file_size), s.seconds);
  fmt::print("\n");
  if (s.n_fallback) fmt::print("{} tensors fell back to another type (rows fit no block)\n", s.n_fallback);
  if (!a.imatrix.empty()) fmt::print("importance matrix used for {} tensors\n", s.n_imatrix_used);
}

// The options, checked before any work: the type, the overrides (a pattern that matches no
// tensor is warned about), the output path and the --report text, which is read now.
core::Result<quantize::QuantizeOptions> prepare(const QuantizeArgs& a, std::string& report_text) {
  const gguf::FileTypeInfo* preset = gguf::find_file_type(a.type);
  if (!preset) return core::make_error("unknown type '{}' (one of: {})", a.type, file_type_names());
  quantize::QuantizeOptions o{.input = a.input, .output = a.output, .preset = *preset};
  for (const std::string& spec : a.tensor_types) {
    auto ov = quantize::parse_tensor_type_override(spec);
    if (!ov) return ov.error();
    o.overrides.push_back(std::move(*ov));
  }
  auto input = gguf::GgufFile::open(a.input);
  if (!input) return input.error();
  for (const std::string& pattern : quantize::unmatched_overrides(*input, o.overrides)) {
    fmt::print(stderr, "owl quantize: warning: --tensor-type pattern '{}' matches no tensor of {}\n", pattern, a.input);
  }
  if (!a.dry_run) {
    if (auto s = core::check_output_path(a.output); !s) return s.error();
    if (!a.report.empty()) {
      auto text = core::read_input(a.report);
      if (!text) return core::make_error("--report: {}", text.message());
      report_text = std::move(*text);
    }
  }
  o.n_threads = a.n_threads;
  o.dry_run = a.dry_run;
  o.allow_requantize = a.allow_requantize;
  return o;
}

int run_quantize(const QuantizeArgs& a) {
  std::string report_text;
  auto o = prepare(a, report_text);
  if (!o) return fail("owl quantize", o.message());
  std::optional<quantize::Imatrix> imatrix;
  if (!a.imatrix.empty()) {
    auto m = quantize::load_imatrix(a.imatrix);
    if (!m) return fail("owl quantize", m.message());
    imatrix = std::move(*m);
    o->imatrix = &*imatrix;
    o->imatrix_path = a.imatrix;
  }
  if (!a.dry_run && isatty(STDERR_FILENO)) o->on_progress = draw_tensor_progress;
  auto summary = quantize::quantize_model(*o);
  if (!summary) return fail("owl quantize", summary.message());
  if (a.dry_run) print_plan(*summary);
  print_summary(a, *summary);
  if (a.report.empty() || a.dry_run) return 0;
  eval::CompareOptions compare{.base = a.input, .candidate = a.output, .text = report_text, .n_ctx = a.report_ctx,
                               .n_threads = a.n_threads};
  if (isatty(STDERR_FILENO)) compare.on_progress = draw_chunk_progress;
  auto report = eval::compare_models(compare);
  if (!report) return fail("owl quantize", "--report: " + report.message());
  print_compare_report(*report, false);
  return 0;
}

}  // namespace

Command register_quantize(CLI::App& root) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* app = root.add_subcommand("quantize", "Quantize a GGUF model to a llama.cpp-style type mix (q4_k_m, q8_0, ...)");
  app->add_option("input", args->input, "Input GGUF model (F32, F16, BF16, Q8_0, ...)")->required();
  app->add_option("output", args->output, "Output GGUF file")->required();
  app->add_option("type", args->type, file_type_names())->required();
  add_threads_option(app, args->n_threads);
  app->add_option("--imatrix", args->imatrix, "Importance matrix from owl imatrix (or llama-imatrix's GGUF format)");
  app->add_option("--tensor-type", args->tensor_types, "PATTERN=TYPE: tensors whose name matches the regex get TYPE");
  app->add_flag("--dry-run", args->dry_run, "Print the type of every tensor; write nothing");
  app->add_flag("--allow-requantize", args->allow_requantize,
                "Quantize tensors that are quantized already (each round loses more quality)");
  app->add_option("--report", args->report, "Text file (-: standard input): after writing, compare the output with the input over it");
  app->add_option("--report-ctx", args->report_ctx, "Context per chunk for --report")
      ->check(CLI::Range(int64_t{2}, kMaxCtx))
      ->capture_default_str();
  return {app, [args] { return run_quantize(*args); }};
}

}  // namespace owl::cli
