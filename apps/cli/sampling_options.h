// The sampling options `owl run` and `owl chat` share, named as llama.cpp names them.
#pragma once

#include <limits>
#include <random>

#include <CLI/CLI.hpp>

#include "engine/request.h"
#include "sample/sampler.h"

namespace owl::cli {

struct SamplingArgs {
  engine::GenerateParams generate = {.max_tokens = 128};
  std::vector<std::string> logit_bias;  // "TOKEN=BIAS"
  int64_t seed = -1;                    // -1: random
};

inline void add_sampling_options(CLI::App* app, SamplingArgs& a) {
  sample::SamplingParams& p = a.generate.sampling;
  app->add_option("-n,--n-predict", a.generate.max_tokens, "Tokens to generate (-1: until the context is full)")
      ->check(CLI::Range(-1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  app->add_option("--temp", p.temperature, "Temperature (0: greedy)")->capture_default_str();
  app->add_option("--top-k", p.top_k, "Top-k (0: off)")->capture_default_str();
  app->add_option("--top-p", p.top_p, "Top-p (1: off)")->capture_default_str();
  app->add_option("--min-p", p.min_p, "Min-p (0: off)")->capture_default_str();
  app->add_option("--typical", p.typical_p, "Locally typical sampling (1: off)")->capture_default_str();
  app->add_option("--repeat-penalty", p.repeat_penalty, "Repetition penalty (1: off)")->capture_default_str();
  app->add_option("--repeat-last-n", p.repeat_last_n, "History the penalties look at (-1: all)")->capture_default_str();
  app->add_option("--presence-penalty", p.presence_penalty, "Presence penalty")->capture_default_str();
  app->add_option("--frequency-penalty", p.frequency_penalty, "Frequency penalty")->capture_default_str();
  app->add_option("--logit-bias", a.logit_bias, "TOKEN_ID=BIAS added to a token's logit (repeatable)");
  app->add_option("--stop", a.generate.stop, "Stop when this text is generated (repeatable)");
  app->add_option("-s,--seed", a.seed, "Random seed (-1: random)")
      ->check(CLI::Range(int64_t{-1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  app->add_flag("--ignore-eos", a.generate.ignore_eos, "Keep generating after end-of-generation tokens");
}

// Checks the ranges (sample::validate_ranges, the server's rules), resolves the seed and parses
// --logit-bias; an error names the option and the bad value. Needs no model: runs before loading.
inline core::Status finish_sampling_args(SamplingArgs& a) {
  sample::SamplingParams& p = a.generate.sampling;
  OWL_TRY(sample::validate_ranges(p));
  p.seed = a.seed < 0 ? std::random_device{}() : static_cast<uint64_t>(a.seed);
  for (const std::string& item : a.logit_bias) {
    const size_t eq = item.find('=');
    try {
      if (eq == std::string::npos) throw std::invalid_argument(item);
      p.logit_bias.emplace_back(std::stoi(item.substr(0, eq)), std::stof(item.substr(eq + 1)));
    } catch (const std::exception&) {
      return core::make_error("--logit-bias '{}' is not TOKEN_ID=BIAS", item);
    }
  }
  return {};
}

}  // namespace owl::cli
