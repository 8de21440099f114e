// The options several commands share, named as llama.cpp names them, each with one meaning, one
// default and one range everywhere, checked while parsing (before any work or output).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/files.h"
#include "gguf/file_type.h"
#include "model/forward.h"
#include "model/model.h"
#include "quantize/quantize.h"

namespace owl::cli {

constexpr int kMaxThreads = model::kMaxThreads;
constexpr int64_t kMaxCtx = int64_t{1} << 20;  // model::make_context's limit

// -t/--threads: 0 (the default everywhere) uses every core.
inline CLI::Option* add_threads_option(CLI::App* app, int& n_threads) {
  return app->add_option("-t,--threads", n_threads, "Threads (0: all cores)")
      ->check(CLI::Range(0, kMaxThreads))
      ->capture_default_str();
}

// -c/--ctx-size: positions of the context; 0: the model's training length, at most 4096.
inline CLI::Option* add_ctx_option(CLI::App* app, int64_t& n_ctx, const std::string& what = "") {
  return app->add_option("-c,--ctx-size", n_ctx, what.empty() ? "Context size (0: the model's, at most 4096)" : what)
      ->check(CLI::Range(int64_t{0}, kMaxCtx))
      ->capture_default_str();
}

// -ngl/--n-gpu-layers (main.cpp spells -ngl as --n-gpu-layers): accepted for llama.cpp's
// command lines; owl runs on the CPU, which is said once when the option is given.
inline CLI::Option* add_gpu_layers_option(CLI::App* app, int& n_gpu_layers) {
  return app->add_option("--n-gpu-layers", n_gpu_layers, "Layers on the GPU (no effect: owl runs on the CPU)")
      ->check(CLI::Range(-1, 100000));
}

inline void note_gpu_layers(const CLI::App* app, const char* command) {
  if (app->count("--n-gpu-layers") > 0) {
    fmt::print(stderr, "{}: --n-gpu-layers has no effect: owl runs on the CPU\n", command);
  }
}

// The context a command will use, warned about when it is longer than the model was trained on.
inline int64_t context_size(const model::Model& model, int64_t n_ctx, const char* command) {
  const int64_t train = model.config.n_ctx_train;
  const int64_t used = n_ctx > 0 ? n_ctx : std::min<int64_t>(train, 4096);
  if (train > 0 && used > train) {
    fmt::print(stderr, "{}: warning: context {} is longer than the {} tokens the model was trained on\n", command, used,
               train);
  }
  return used;
}

// llama.cpp's warning: the prompt's own text starts with BOS and the automatic one is added too.
inline void warn_double_bos(const std::vector<int32_t>& tokens, int32_t bos, const char* command) {
  if (tokens.size() >= 2 && bos >= 0 && tokens[0] == bos && tokens[1] == bos) {
    fmt::print(stderr, "{}: warning: the prompt starts with the BOS token and another is added: 2 BOS tokens "
                       "(remove it from the text or give --no-bos)\n", command);
  }
}

// A single line redrawn with \r while chunks are scored (only when stderr is a terminal).
inline void draw_chunk_progress(int64_t done, int64_t total) {
  fmt::print(stderr, "\rchunk {}/{}", done, total);
  if (done == total) fmt::print(stderr, "\n");
  std::fflush(stderr);
}

// "f32 f16 ... q2_k": every file type owl quantize and owl merge write, as gguf/file_type.h lists them.
inline std::string file_type_names() {
  std::string names;
  for (const gguf::FileTypeInfo& f : gguf::file_types()) {
    names += std::string(names.empty() ? "" : " ") + std::string(f.name);
  }
  return names;
}

// A bar over the input bytes of the tensors written so far (owl quantize, owl merge), redrawn
// with \r (only when stderr is a terminal).
inline void draw_tensor_progress(const quantize::QuantizeProgress& p) {
  constexpr int kWidth = 30;
  const double f = p.bytes_in_total ? static_cast<double>(p.bytes_in_done) / static_cast<double>(p.bytes_in_total) : 1;
  const int filled = static_cast<int>(f * kWidth);
  fmt::print(stderr, "\r[{}{}] {:3.0f}%  {}/{} {:<32.32}", std::string(filled, '#'), std::string(kWidth - filled, ' '),
             100 * f, p.tensors_done, p.tensors_total, p.tensor);
  if (p.tensors_done == p.tensors_total) fmt::print(stderr, "\n");
  std::fflush(stderr);
}

// Prints an error from src/ once, under the command's name: "owl bench: <message>". Messages
// from src/ carry their module's prefix already; the command's is not repeated.
inline int fail(const char* command, std::string_view message) {
  std::string_view name(command);
  if (name.rfind("owl ", 0) == 0) name.remove_prefix(4);
  if (message.size() > name.size() + 1 && message.substr(0, name.size()) == name && message[name.size()] == ':') {
    message.remove_prefix(name.size() + 1);
    while (!message.empty() && message.front() == ' ') message.remove_prefix(1);
  }
  fmt::print(stderr, "{}: {}\n", command, message);
  return 1;
}

inline int fail_unless_writable(const char* command, const std::string& path, const char* option) {
  if (auto s = core::check_output_path(path); !s) return fail(command, fmt::format("{} {}", option, s.message()));
  return 0;
}

}  // namespace owl::cli
