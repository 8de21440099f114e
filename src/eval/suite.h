// An eval suite (docs/eval.md): the cases of a task, how each becomes a prompt, how outputs are
// scored, the candidates (local GGUF models × quantizations × adapters, hosted APIs) and the rule
// that says which pass. Parsing checks everything a typo can break and names the file, line and
// key of the first mistake; cases from a JSONL file are named by file and line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "eval/scorers.h"
#include "router/config.h"
#include "template/template.h"

namespace owl::eval {

struct Case {
  std::string id;
  Json fields;                      // every key of the case (id and expected ones included)
  std::vector<ScorerSpec> scorers;  // the case's own; empty: the suite's
  std::string where;                // "cases.jsonl:12", for messages
};

enum class Mode { kCompletion, kChat };

// One configuration to evaluate: a local model file (as it is or quantized) with or without an
// adapter, or a hosted model.
struct Candidate {
  std::string id;                // model[:quant][+adapter]
  std::string model;             // local: the GGUF path as the suite resolves it
  std::string quant;             // "" = the file as it is; else a type owl quantize knows (q4_0, ...)
  std::string adapter;           // "" = none; else a LoRA GGUF path
  double adapter_scale = 1;
  std::optional<router::ModelSpec> hosted;  // a hosted candidate (base_url, model, key, price)
  bool local() const { return !hosted.has_value(); }
};

struct Thresholds {
  std::optional<double> pass_rate;       // >=, on the 95% lower bound when use_lower_bound
  bool use_lower_bound = false;
  std::optional<double> latency_p50_ms;  // <=
  std::optional<double> latency_p95_ms;
  std::optional<double> ttft_p95_ms;
  std::optional<double> memory_mb;       // peak RSS, <=
  std::optional<double> size_mb;         // file size, <=
  std::optional<double> cost_usd;        // the whole run's, <=
  std::optional<double> json_valid;      // share of outputs that parse as JSON, >=
  std::vector<std::pair<std::string, double>> scores;  // a scorer's mean, >=
};

enum class RankBy { kSize, kMemory, kCost, kLatency };
const char* rank_by_name(RankBy r);

struct Suite {
  std::string name;
  std::string file;              // where it was read from
  std::string dir;               // relative paths (cases, models, adapters) resolve against it
  std::vector<Case> cases;
  std::string prompt;            // a template over a case's fields (Jinja, as chat templates)
  std::string system;            // chat: the system message ("" = none); a template too
  Mode mode = Mode::kCompletion;
  // Sampling: greedy unless told otherwise.
  double temperature = 0;
  double top_p = 1;
  int64_t max_tokens = 64;
  std::vector<std::string> stop;
  uint64_t seed = 0;
  int repeats = 1;               // repeat r samples with seed + r
  int64_t ctx = 0;               // positions per sequence for local models; 0: the model's, at most 4096
  std::vector<ScorerSpec> scorers;
  // A case passes when every required scorer passes and the weighted share of scorers that pass
  // is at least case_pass (1: all of them).
  double case_pass = 1;
  std::vector<Candidate> candidates;
  Thresholds thresholds;
  RankBy rank_by = RankBy::kSize;
  double local_per_core_hour = 0.05;  // USD per core-hour of local compute

  // The prompt of `c` (and the system message, for chat); errors name the case.
  core::Result<std::string> render_prompt(const Case& c) const;
  core::Result<std::string> render_system(const Case& c) const;
  const std::vector<ScorerSpec>& scorers_of(const Case& c) const { return c.scorers.empty() ? scorers : c.scorers; }

  std::optional<tmpl::Template> prompt_template, system_template;
};

// `name` labels messages (the file's path); `dir` resolves relative paths.
core::Result<Suite> parse_suite(std::string_view yaml, std::string_view name, const std::string& dir);
core::Result<Suite> load_suite(const std::string& path);

// A scorer from JSON (a case's "scorers" in a JSONL file, or a YAML item converted); `where`
// prefixes errors.
core::Result<ScorerSpec> scorer_from_json(const Json& j, const std::string& where);

}  // namespace owl::eval
