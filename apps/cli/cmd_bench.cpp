// owl bench: prompt-processing and generation tokens/s, as llama-bench reports them.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common_options.h"
#include "eval/bench.h"
#include "format.h"
#include "kernels/cpu_features.h"
#include "lora_options.h"
#include "model/model_info.h"

namespace owl::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> models;
  eval::BenchOptions options;
  std::string output = "md";
  int n_gpu_layers = -1;
  LoraArgs lora;
};

// A model to measure and the adapters loaded for it (null: none).
struct BenchModel {
  std::unique_ptr<model::Model> model;
  std::shared_ptr<const model::AdapterSet> adapters;
};

// "llama 1.10B Q4_0": architecture, parameters, the type holding most bytes.
std::string model_type(const model::ModelInfo& info) {
  std::string main_type;
  uint64_t most = 0;
  for (const auto& [name, usage] : info.types) {
    if (usage.bytes > most) {
      most = usage.bytes;
      main_type = name;
    }
  }
  for (char& c : main_type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string params = human_count(info.n_params);
  params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
  return fmt::format("{} {} {}", info.architecture, params, main_type);
}

std::string size_mib(uint64_t bytes) {
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  return mib >= 1024.0 ? fmt::format("{:.2f} GiB", mib / 1024.0) : fmt::format("{:.2f} MiB", mib);
}

// "tg128 of llama 1.10B F16 reads 2.20 GB of weights per token: 54.1 GB/s, 0.86 of ..."
std::string bandwidth_note(const std::string& model, const eval::BenchResult& r) {
  const auto [low, high] = std::minmax_element(r.read_gbs.begin(), r.read_gbs.end());
  return fmt::format("{} of {} reads {:.2f} GB of weights per token: {:.2f} of the memory read bandwidth measured "
                     "before each repetition (median; that bandwidth was {:.1f}-{:.1f} GB/s)\n",
                     r.test, model, r.weight_bytes_per_token / 1e9, r.median_share(), *low, *high);
}

// The profile of a test as a table: per token for tg, per repetition for pp.
std::string profile_note(const std::string& model, const eval::BenchResult& r) {
  const model::StepProfile& p = r.profile;
  const bool tg = r.n_gen > 0;
  const double units = tg ? static_cast<double>(p.tokens) : static_cast<double>(r.samples_ns.size());
  if (units <= 0 || p.total_ns <= 0) return {};
  const double read_gbs = r.median_read_gbs();  // 0: not measured
  std::string text = fmt::format("{} of {}, where the time goes ({}: {:.3f} ms):\n\n", r.test, model,
                                 tg ? "per token" : "per repetition", p.total_ns / units / 1e6);
  text += fmt::format("| part | weights | calls | ms | share | weight MB | weight GB/s |{} GFLOP/s |\n",
                      read_gbs > 0 ? " of bandwidth |" : "");
  text += fmt::format("| --- | --- | ---: | ---: | ---: | ---: | ---: |{} ---: |\n", read_gbs > 0 ? " ---: |" : "");
  double timed = 0;
  for (const model::StepProfile::Entry& e : p.entries) {
    timed += e.ns;
    const bool weights = e.weight_bytes > 0;
    const double gbs = weights ? e.weight_bytes / e.ns : 0;
    text += fmt::format("| {} | {} | {:.0f} | {:.3f} | {:.1f}% | {} | {} |{} {} |\n", model::StepProfile::part_name(e.part),
                        model::StepProfile::type_names(e.types), static_cast<double>(e.calls) / units, e.ns / units / 1e6,
                        100.0 * e.ns / p.total_ns, weights ? fmt::format("{:.1f}", e.weight_bytes / units / 1e6) : "",
                        weights ? fmt::format("{:.1f}", gbs) : "",
                        read_gbs > 0 ? fmt::format(" {} |", weights ? fmt::format("{:.2f}", gbs / read_gbs) : "") : "",
                        weights ? fmt::format("{:.1f}", e.flops / e.ns) : "");
  }
  const double rest = std::max(0.0, p.total_ns - timed);
  text += fmt::format("| rest: norms, RoPE, activation, residual, embedding | | | {:.3f} | {:.1f}% | | |{} |\n\n",
                      rest / units / 1e6, 100.0 * rest / p.total_ns, read_gbs > 0 ? " |" : "");
  return text;
}

nlohmann::json profile_json(const eval::BenchResult& r) {
  nlohmann::json parts = nlohmann::json::array();
  for (const model::StepProfile::Entry& e : r.profile.entries) {
    parts.push_back({{"part", model::StepProfile::part_name(e.part)},
                     {"types", model::StepProfile::type_names(e.types)},
                     {"calls", e.calls},
                     {"ns", e.ns},
                     {"weight_bytes", e.weight_bytes},
                     {"flops", e.flops}});
  }
  return {{"total_ns", r.profile.total_ns},
          {"forwards", r.profile.forwards},
          {"tokens", r.profile.tokens},
          {"parts", parts}};
}

// Loads every model and the adapters for it, and checks the options against each before anything
// is printed or timed.
core::Result<std::vector<BenchModel>> load_models(const BenchArgs& args) {
  std::vector<BenchModel> models;
  for (const std::string& path : args.models) {
    auto model = model::load_model(path);
    if (!model) return model.error();
    if (auto s = eval::check_bench_options(**model, args.options); !s) return s.error();
    auto adapters = load_adapters(args.lora.specs, **model);
    if (!adapters) return adapters.error();
    models.push_back({std::move(*model), std::move(*adapters)});
  }
  return models;
}

// The table's lora column: "a.gguf x1, b.gguf x0.5".
std::string lora_cell(const std::vector<LoraSpec>& specs) {
  std::string text;
  for (const LoraSpec& s : specs) text += fmt::format("{}{} x{:g}", text.empty() ? "" : ", ", s.path, s.scale);
  return text;
}

void draw_progress(const std::string& test, int rep, int repetitions) {
  fmt::print(stderr, "\r{:<12} repetition {}/{}   ", test, rep, repetitions);
  std::fflush(stderr);
}

int run_bench(BenchArgs& args) {
  if (auto s = finish_lora_args(args.lora); !s) return fail("owl bench", s.message());
  auto models = load_models(args);
  if (!models) return fail("owl bench", models.message());
  if (!models->empty()) note_adapters("owl bench", args.lora.specs, models->front().adapters.get());
  const bool lora = !args.lora.specs.empty();
  if (args.options.n_threads == 0) args.options.n_threads = static_cast<int>(std::thread::hardware_concurrency());
  const bool progress = ::isatty(STDERR_FILENO) != 0;
  if (progress) args.options.on_progress = draw_progress;
  const std::string isa(kernels::isa_name(kernels::select_isa(kernels::detect_cpu_features())));
  nlohmann::json records = nlohmann::json::array();
  std::vector<std::string> notes;  // printed under the table
  if (args.output == "md") {
    fmt::print("| model | size | params | backend | threads |{} test | t/s |\n", lora ? " lora |" : "");
    fmt::print("| --- | ---: | ---: | --- | ---: |{} ---: | ---: |\n", lora ? " --- |" : "");
  }
  nlohmann::json lora_json = nlohmann::json::array();
  for (const LoraSpec& s : args.lora.specs) lora_json.push_back({{"path", s.path}, {"scale", s.scale}});
  for (size_t m = 0; m < models->size(); ++m) {
    const std::string& path = args.models[m];
    const model::ModelInfo info = model::describe_model((*models)[m].model->file);
    args.options.adapters = (*models)[m].adapters.get();
    auto results = eval::run_bench(*(*models)[m].model, args.options);
    if (progress) fmt::print(stderr, "\r{:<40}\r", "");
    if (!results) return fail("owl bench", results.message());
    for (const eval::BenchResult& r : *results) {
      if (args.output == "md") {
        fmt::print("| {} | {} | {} | CPU ({}) | {} |{} {} | {:.2f} ± {:.2f} |\n", model_type(info),
                   size_mib(info.tensor_bytes), human_count(info.n_params), isa, args.options.n_threads,
                   lora ? " " + lora_cell(args.lora.specs) + " |" : "", r.test, r.avg_ts, r.stddev_ts);
        const std::string measured = model_type(info) + (lora ? " with its LoRA adapters" : "");
        if (!r.read_gbs.empty()) notes.push_back(bandwidth_note(measured, r));
        if (args.options.profile) notes.push_back(profile_note(measured, r));
        std::fflush(stdout);
        continue;
      }
      const std::time_t now = std::time(nullptr);
      char stamp[32];
      std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
      std::vector<double> samples_ts;
      for (double ns : r.samples_ns) samples_ts.push_back(1e9 * static_cast<double>(r.n_prompt + r.n_gen) / ns);
      records.push_back({{"build_commit", "owl"},
                         {"backends", "CPU"},
                         {"isa", isa},
                         {"model_filename", path},
                         {"model_type", model_type(info)},
                         {"model_size", info.tensor_bytes},
                         {"model_n_params", info.n_params},
                         {"n_batch", args.options.n_batch},
                         {"n_threads", args.options.n_threads},
                         {"type_k", "f16"},
                         {"type_v", "f16"},
                         {"lora", lora_json},
                         {"n_prompt", r.n_prompt},
                         {"n_gen", r.n_gen},
                         {"test_time", stamp},
                         {"avg_ns", static_cast<int64_t>(r.avg_ns)},
                         {"stddev_ns", static_cast<int64_t>(r.stddev_ns)},
                         {"avg_ts", r.avg_ts},
                         {"stddev_ts", r.stddev_ts},
                         {"samples_ns", r.samples_ns},
                         {"samples_ts", samples_ts}});
      if (!r.read_gbs.empty()) {
        records.back()["weight_bytes_per_token"] = r.weight_bytes_per_token;
        records.back()["read_bandwidth_gbs"] = r.read_gbs;
        records.back()["bandwidth_share"] = r.bandwidth_shares();
      }
      if (args.options.profile) records.back()["profile"] = profile_json(r);
    }
  }
  if (args.output == "json") fmt::print("{}\n", records.dump(2));
  if (!notes.empty()) fmt::print("\n{}", fmt::join(notes, ""));
  return 0;
}

}  // namespace

Command register_bench(CLI::App& root) {
  auto args = std::make_shared<BenchArgs>();
  eval::BenchOptions& o = args->options;
  CLI::App* app = root.add_subcommand("bench", "Prompt-processing and generation speed (tokens/s), as llama-bench measures it");
  app->add_option("-m,--model", args->models, "GGUF model file (repeat for several)")->required();
  app->add_option("-p,--n-prompt", o.n_prompt, "Prompt tokens processed in one batch (0: skip; at most the model's context)")
      ->check(CLI::Range(int64_t{0}, kMaxCtx))
      ->capture_default_str();
  app->add_option("-n,--n-gen", o.n_gen, "Tokens generated one at a time (0: skip; at most the model's context)")
      ->check(CLI::Range(int64_t{0}, kMaxCtx))
      ->capture_default_str();
  add_threads_option(app, o.n_threads);
  add_gpu_layers_option(app, args->n_gpu_layers);
  app->add_option("-r,--repetitions", o.repetitions, "Repetitions of each test")->check(CLI::Range(1, 1000))->capture_default_str();
  app->add_option("-b,--batch-size", o.n_batch, "Largest batch per forward pass")
      ->check(CLI::Range(int64_t{1}, kMaxCtx))
      ->capture_default_str();
  app->add_flag("--bandwidth", o.bandwidth,
               "Measure the memory read bandwidth before each generation repetition and print generation's share of it");
  app->add_flag("--profile", o.profile,
               "Time each kind of weight matmul and attention, and print where a token's (tg) or a repetition's (pp) "
               "time goes, with the weights' bytes and GB/s");
  app->add_flag("--deterministic", o.batch_invariant,
               "Batch-invariant kernels, as `owl serve --deterministic` runs them (what that costs)");
  add_lora_options(app, args->lora);
  app->add_option("-o,--output", args->output, "Output format")->check(CLI::IsMember({"md", "json"}))->capture_default_str();
  return {app, [args, app] {
            note_gpu_layers(app, "owl bench");
            return run_bench(*args);
          }};
}

}  // namespace owl::cli
