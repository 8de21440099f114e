// Runs an eval suite: every candidate on every case (× repeats), each candidate's cases through
// its provider at once (the local engine's continuous batching with prefix reuse, or a hosted
// API with bounded concurrency), outputs cached by what decides them, scored as they arrive.
// A candidate that cannot load or answer is reported as failed with the reason; the others go on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "eval/scorers.h"
#include "eval/suite.h"

namespace owl::eval {

struct RunOptions {
  std::string cache_dir;          // quantized models and results.sqlite
  bool use_cache = true;          // false: compute everything again (results are still stored)
  int parallel = 8;               // sequences at once in a local engine; requests at once to a hosted API
  int n_threads = 0;              // 0: all cores
  std::vector<std::string> only;  // candidate ids to run; empty: all
  const std::atomic<bool>* interrupted = nullptr;  // set (Ctrl-C): stop, keeping what is done
  // Called on the calling thread as cases finish: the candidate, cases done, their total, how many passed.
  std::function<void(const Candidate&, size_t done, size_t total, size_t passed)> on_progress;
  std::function<void(const std::string& line)> on_note;  // "quantizing ...", for the terminal
};

// What a model's answer tells about its confidence (the router's cascade is calibrated from it).
struct CaseConfidence {
  std::optional<double> mean_logprob;  // mean log-probability of the output's tokens
  std::optional<double> min_logprob;   // its least likely token
  std::optional<double> margin;        // choice: best label's log-probability minus the second's
};

struct CaseResult {
  size_t case_index = 0;
  int repeat = 0;
  std::string output;            // choice: the label chosen
  std::string error;             // the request failed: the case fails with this
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double ttft_ms = 0;            // admission (local) or sending (hosted) to the first token
  double latency_ms = 0;         // to the last
  double cost_usd = 0;
  std::vector<std::pair<std::string, double>> label_logprobs;  // choice: each label's summed log-probability
  std::vector<Score> scores;     // one per scorer of the case, in order
  double score = 0;              // weighted mean of the scores
  bool passed = false;
  CaseConfidence confidence;
  bool cached = false;
};

struct CandidateRun {
  Candidate candidate;
  std::string failure;           // why it could not run; "" when it ran
  std::string path;              // the file evaluated (the quantized copy when quantized)
  uint64_t size_bytes = 0;       // model file (+ adapter)
  int64_t peak_rss_bytes = 0;    // while it loaded and ran (local); 0 when unmeasured
  double wall_seconds = 0;       // computing what was not cached
  int64_t computed = 0;          // cases computed in this run (the rest came from the cache)
  std::vector<CaseResult> cases; // in suite order, repeats together; fewer when interrupted
};

// `on_note` and `on_progress` run on the calling thread.
core::Result<std::vector<CandidateRun>> run_suite(const Suite& suite, const RunOptions& options);

// The case's score and pass from its scorers' (suite.case_pass, required gates).
void decide_case(const std::vector<ScorerSpec>& scorers, double case_pass, CaseResult& result);

// The default folder for quantized copies and cached results: $XDG_CACHE_HOME/owl/eval or
// ~/.cache/owl/eval.
std::string default_cache_dir();

}  // namespace owl::eval
