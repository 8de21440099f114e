// The sampling options `owl run` and `owl chat` share, named as llama.cpp names them.
#pragma once

#include <limits>
#include <random>

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include "constrain/grammar.h"
#include "constrain/json_schema.h"
#include "constrain/matcher.h"
#include "core/files.h"
#include "engine/request.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace owl::cli {

struct SamplingArgs {
  engine::GenerateParams generate = {.max_tokens = 128};
  std::vector<std::string> logit_bias;  // "TOKEN=BIAS"
  int64_t seed = -1;                    // -1: random
  std::string grammar_file;             // GBNF
  std::string json_schema_file;         // JSON Schema
  std::string grammar;                  // GBNF of either, once read and checked
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
  auto* g = app->add_option("--grammar", a.grammar_file, "Constrain the output to a GBNF grammar (llama.cpp's syntax) in FILE");
  auto* j = app->add_option("--json-schema", a.json_schema_file, "Constrain the output to JSON valid against the JSON Schema in FILE");
  g->excludes(j);
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
  if (!a.grammar_file.empty()) {
    auto text = core::read_file(a.grammar_file);
    if (!text) return core::make_error("--grammar: {}", text.message());
    auto parsed = constrain::Grammar::parse(*text);
    if (!parsed) return core::make_error("--grammar {}: {}", a.grammar_file, parsed.message());
    a.grammar = std::move(*text);
  }
  if (!a.json_schema_file.empty()) {
    auto text = core::read_file(a.json_schema_file);
    if (!text) return core::make_error("--json-schema: {}", text.message());
    auto schema = nlohmann::ordered_json::parse(*text, nullptr, false);
    if (schema.is_discarded()) return core::make_error("--json-schema {}: not valid JSON", a.json_schema_file);
    auto gbnf = constrain::json_schema_to_gbnf(schema);
    if (!gbnf) return core::make_error("--json-schema {}: {}", a.json_schema_file, gbnf.message());
    a.grammar = std::move(*gbnf);
  }
  return {};
}

// Binds --grammar / --json-schema to the model's vocabulary: each generation gets its constraint.
inline core::Status attach_constraint(SamplingArgs& a, const tokenizer::Tokenizer& tokenizer) {
  if (a.grammar.empty()) return {};
  auto program = constrain::compile(a.grammar, std::make_shared<const constrain::TokenIndex>(tokenizer));
  if (!program) return program.error();
  a.generate.constraint = (*program)->factory();
  return {};
}

}  // namespace owl::cli
