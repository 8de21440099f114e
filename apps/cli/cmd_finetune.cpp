// owl finetune: a LoRA adapter trained on the CPU from JSONL examples, written in llama.cpp's
// adapter format (docs/finetune.md).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chat_template.h"
#include "commands.h"
#include "common_options.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/lora.h"
#include "train/trainer.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl finetune";

struct FinetuneArgs {
  std::string model, data, val, output, targets = "q,k,v,o,gate,up,down", schedule = "cosine", recompute = "auto";
  std::string resume, checkpoint, log, chat_format = "chatml", chat_template;
  double val_split = 0;
  int64_t rank = 8, ctx = 512;
  float alpha = 16;
  bool train_on_prompt = false, truncate = false, quiet = false;
  train::TrainOptions train;
};

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

// Ctrl-C or SIGTERM: training stops after the step under way, writing the adapter and a checkpoint.
void on_signal(int sig) {
  g_signal = sig;
  if (g_stop.exchange(true)) _exit(128 + sig);  // a second signal: stop now
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Created 0600: a log of training may say much about the data.
std::FILE* open_private(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  return fd < 0 ? nullptr : fdopen(fd, "w");
}

int run_finetune(FinetuneArgs& a) {
  if (int rc = fail_unless_writable(kCommand, a.output, "-o")) return rc;
  if (!a.val.empty() && a.val_split > 0) return fail(kCommand, "give --val or --val-split, not both");
  auto schedule = a.schedule == "cosine"   ? std::optional(train::Schedule::kCosine)
                  : a.schedule == "linear" ? std::optional(train::Schedule::kLinear)
                  : a.schedule == "constant" ? std::optional(train::Schedule::kConstant)
                                             : std::nullopt;
  if (!schedule) return fail(kCommand, fmt::format("--schedule '{}' is not cosine, linear or constant", a.schedule));
  a.train.schedule = *schedule;
  auto recompute = a.recompute == "auto" ? std::optional(train::Recompute::kAuto)
                   : a.recompute == "on" ? std::optional(train::Recompute::kOn)
                   : a.recompute == "off" ? std::optional(train::Recompute::kOff)
                                          : std::nullopt;
  if (!recompute) return fail(kCommand, fmt::format("--recompute '{}' is not auto, on or off", a.recompute));
  a.train.recompute = *recompute;

  auto model = model::load_model(a.model, {.pack_weights = false});  // read as GGUF rows
  if (!model) return fail(kCommand, model.message());
  auto tok = tokenizer::Tokenizer::load((*model)->file);
  if (!tok) return fail(kCommand, tok.message());
  std::optional<tmpl::Template> chat;
  train::TemplateSource source = [&]() -> core::Result<const tmpl::Template*> {
    if (!chat) {
      auto t = load_chat_template(a.chat_template, a.chat_format, (*model)->file, kCommand);
      if (!t) return t.error();
      chat = std::move(*t);
    }
    return &*chat;
  };
  const int64_t n_ctx = std::min<int64_t>(a.ctx, (*model)->config.n_ctx_train > 0 ? (*model)->config.n_ctx_train : a.ctx);
  train::DataOptions data_options{.n_ctx = n_ctx, .truncate = a.truncate, .train_on_prompt = a.train_on_prompt};
  auto data = train::load_dataset(a.data, *tok, source, data_options);
  if (!data) return fail(kCommand, data.message());
  train::Dataset val;
  if (!a.val.empty()) {
    auto v = train::load_dataset(a.val, *tok, source, data_options);
    if (!v) return fail(kCommand, v.message());
    val = std::move(*v);
  } else if (a.val_split > 0) {  // a seeded draw, the same on every run with the same --seed
    std::vector<train::Example>& all = data->examples;
    const auto n_val = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(all.size()) * a.val_split + 0.5));
    if (n_val >= all.size()) {
      return fail(kCommand, fmt::format("--val-split {} leaves no training examples out of {}", a.val_split, all.size()));
    }
    std::mt19937_64 rng(a.train.seed);
    for (size_t i = all.size() - 1; i > 0; --i) std::swap(all[i], all[static_cast<size_t>(rng() % (i + 1))]);
    val.examples.assign(std::make_move_iterator(all.end() - static_cast<std::ptrdiff_t>(n_val)),
                        std::make_move_iterator(all.end()));
    all.resize(all.size() - n_val);
    std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) { return x.line < y.line; });
    std::sort(val.examples.begin(), val.examples.end(), [](const auto& x, const auto& y) { return x.line < y.line; });
    for (train::Dataset* d : {&*data, &val}) {
      d->n_tokens = d->n_targets = 0;
      for (const auto& ex : d->examples) d->n_tokens += static_cast<int64_t>(ex.tokens.size()), d->n_targets += ex.n_targets();
    }
  }
  if (data->n_truncated > 0) {
    fmt::print(stderr, "{}: {} examples were cut to --ctx {} tokens\n", kCommand, data->n_truncated, n_ctx);
  }

  auto targets = train::parse_targets(a.targets, **model);
  if (!targets) return fail(kCommand, targets.message());
  std::mt19937_64 rng(a.train.seed);
  const std::string name = std::filesystem::path(a.output).stem().string();
  auto lora = train::make_lora(**model, *targets, a.rank, a.alpha, rng, name);
  if (!lora) return fail(kCommand, lora.message());
  if (a.checkpoint.empty()) a.checkpoint = a.output + ".checkpoint";
  a.train.checkpoint = a.checkpoint;

  fmt::print(stderr, "{}: {} examples ({} tokens, {} to learn){}; LoRA rank {} alpha {} on {} weights, {} parameters\n",
             kCommand, data->examples.size(), data->n_tokens, data->n_targets,
             val.examples.empty() ? std::string() : fmt::format(", {} for validation", val.examples.size()), a.rank,
             a.alpha, lora->slots.size(), lora->n_params());
  const train::ActivationPlan plan = train::plan_activations(**model, a.train, *data, val);
  if (plan.recompute) {
    fmt::print(stderr, "{}: activations {:.0f} MB with layers recomputed in the backward pass ({:.0f} MB kept whole)\n",
               kCommand, static_cast<double>(plan.inputs_bytes) / 1e6, static_cast<double>(plan.full_bytes) / 1e6);
  }

  std::FILE* log = nullptr;
  if (!a.log.empty()) {
    log = open_private(a.log);
    if (log == nullptr) return fail(kCommand, fmt::format("--log {}: cannot create the file", a.log));
  }
  const bool tty = isatty(STDERR_FILENO) != 0 && !a.quiet;
  int64_t tokens_total = 0;
  std::optional<double> last_val;
  auto on_step = [&](const train::StepReport& r) {
    tokens_total += r.tokens;
    if (r.val_loss) last_val = r.val_loss;
    const double tps = r.elapsed > 0 ? static_cast<double>(tokens_total) / r.elapsed : 0;
    const double eta = r.elapsed / static_cast<double>(r.step) * static_cast<double>(r.total - r.step);
    if (log != nullptr) {
      nlohmann::ordered_json j = {{"step", r.step}, {"total", r.total}, {"loss", r.loss}, {"lr", r.lr},
                                  {"grad_norm", r.grad_norm}, {"tokens", r.tokens}, {"seconds", r.seconds},
                                  {"tokens_per_second", tps}};
      if (r.val_loss) j["val_loss"] = *r.val_loss;
      fmt::print(log, "{}\n", j.dump());
      std::fflush(log);
    }
    if (a.quiet) return;
    const std::string val_text = last_val ? fmt::format(" val {:.4f}", *last_val) : std::string();
    const bool every = r.step == r.total || r.val_loss || r.step % std::max<int64_t>(1, r.total / 20) == 0;
    if (tty) {
      constexpr int kWidth = 24;
      const auto filled = static_cast<int>(kWidth * r.step / r.total);
      fmt::print(stderr, "\r\x1b[Kstep {}/{} [{}{}] loss {:.4f}{} | {:.0f} tok/s | ETA {}", r.step, r.total,
                 std::string(static_cast<size_t>(filled), '='), std::string(static_cast<size_t>(kWidth - filled), ' '),
                 r.loss, val_text, tps, duration(eta));
      if (r.step == r.total) fmt::print(stderr, "\n");
      std::fflush(stderr);
    } else if (every) {
      fmt::print(stderr, "step {}/{} loss {:.4f}{} | {:.0f} tok/s | ETA {}\n", r.step, r.total, r.loss, val_text, tps,
                 duration(eta));
    }
  };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto result = train::train(**model, *lora, *data, val, a.train, a.resume, on_step, &g_stop);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (log != nullptr) std::fclose(log);
  if (tty) fmt::print(stderr, "\n");
  if (!result) return fail(kCommand, result.message());
  const std::vector<std::pair<std::string, std::string>> meta = {
      {"training.base_model", std::filesystem::path(a.model).filename().string()},
      {"training.data", std::filesystem::path(a.data).filename().string()},
      {"training.steps", std::to_string(result->steps)},
      {"training.targets", a.targets}};
  if (auto s = train::save_lora(*lora, **model, a.output, meta); !s) return fail(kCommand, s.message());
  std::string how = fmt::format("{} steps, train loss {:.4f}", result->steps, result->final_loss);
  if (result->best_val_loss) how += fmt::format(", validation loss {:.4f} (the adapter of step {})", *result->best_val_loss, result->best_step);
  if (result->stopped_early) how += ", stopped early";
  fmt::print(stderr, "{}: wrote {} ({}; {:.0f} tokens/s)\n", kCommand, a.output, how, result->tokens_per_second);
  if (result->interrupted) {
    fmt::print(stderr, "{}: interrupted; the same command with --resume {} continues\n", kCommand, a.checkpoint);
    return 128 + (g_signal != 0 ? g_signal.load() : SIGINT);
  }
  return 0;
}

}  // namespace

Command register_finetune(CLI::App& root) {
  auto a = std::make_shared<FinetuneArgs>();
  CLI::App* app = root.add_subcommand("finetune", "Train a LoRA adapter on JSONL examples (on the CPU); writes it "
                                                  "in llama.cpp's adapter format");
  app->add_option("-m,--model", a->model, "Base model (GGUF; any weight type: a quantized base trains as it is)")
      ->required()->check(CLI::ExistingFile);
  app->add_option("--data", a->data, "Training examples, JSONL: {\"messages\": [...]}, {\"prompt\", \"completion\"} or {\"text\"}")
      ->required()->check(CLI::ExistingFile);
  app->add_option("--val", a->val, "Validation examples (JSONL, as --data)")->check(CLI::ExistingFile);
  app->add_option("--val-split", a->val_split, "Share of --data held out for validation")->check(CLI::Range(0.0, 0.9));
  app->add_option("-o,--output", a->output, "The adapter to write (GGUF)")->required();
  app->add_option("--rank", a->rank, "LoRA rank r")->check(CLI::Range(int64_t{1}, int64_t{512}))->capture_default_str();
  app->add_option("--alpha", a->alpha, "LoRA alpha (the update is scaled by alpha / r)")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--targets", a->targets, "Weights that get a LoRA pair: q, k, v, o, gate, up, down")->capture_default_str();
  app->add_option("--epochs", a->train.epochs, "Passes over --data (when --steps is not given)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))->capture_default_str();
  app->add_option("--steps", a->train.steps, "Optimizer steps (instead of --epochs)")->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app->add_option("--lr", a->train.lr, "Peak learning rate")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  app->add_option("--batch", a->train.batch, "Examples per forward and backward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))->capture_default_str();
  app->add_option("--grad-accum", a->train.grad_accum, "Passes whose gradients add up to one optimizer step")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  app->add_option("--ctx", a->ctx, "The longest example in tokens (at most the model's context)")
      ->check(CLI::Range(int64_t{2}, kMaxCtx))->capture_default_str();
  app->add_option("--schedule", a->schedule, "Learning-rate schedule after warm-up: cosine, linear or constant")->capture_default_str();
  app->add_option("--warmup", a->train.warmup, "Steps of linear warm-up")->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  app->add_option("--weight-decay", a->train.weight_decay, "AdamW's decoupled weight decay")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  app->add_option("--dropout", a->train.dropout, "LoRA dropout: the share of each pair's input zeroed while training")
      ->check(CLI::Range(0.0f, 0.95f))->capture_default_str();
  app->add_option("--clip", a->train.clip, "Clip the gradients' global norm to this (0: no clipping)")->check(CLI::Range(0.0f, 1e6f))->capture_default_str();
  app->add_option("--recompute", a->recompute,
                  "Recompute each layer's activations in the backward pass instead of keeping them: auto (when they "
                  "would take over 256 MB), on or off")
      ->capture_default_str();
  app->add_option("--seed", a->train.seed, "Seed of the initialisation, the data order and --val-split")->capture_default_str();
  app->add_option("--eval-every", a->train.eval_every, "Steps between validation losses (0: at the end)")->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  app->add_option("--early-stop", a->train.early_stop, "Stop after this many validations without improvement")->check(CLI::Range(int64_t{0}, int64_t{100000}));
  app->add_option("--checkpoint-every", a->train.checkpoint_every, "Steps between checkpoints")->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  app->add_option("--checkpoint", a->checkpoint, "Checkpoint file (default: OUTPUT.checkpoint; also written on Ctrl-C)");
  app->add_option("--resume", a->resume, "Continue from a checkpoint (same options and data)")->check(CLI::ExistingFile);
  app->add_option("--log", a->log, "Write one JSON line per step to this file");
  app->add_option("--chat-format", a->chat_format, "Format for messages examples when the model has no chat template")->capture_default_str();
  app->add_option("--chat-template", a->chat_template, "Jinja chat template file for messages examples")->check(CLI::ExistingFile);
  app->add_flag("--train-on-prompt", a->train_on_prompt, "Loss on the prompt of prompt/completion examples too");
  app->add_flag("--truncate", a->truncate, "Cut examples longer than --ctx instead of refusing them");
  app->add_flag("-q,--quiet", a->quiet, "No progress on standard error");
  add_threads_option(app, a->train.n_threads);
  return {app, [a] { return run_finetune(*a); }};
}

}  // namespace owl::cli
