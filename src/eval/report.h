// What an eval run says: per candidate its pass rate with a 95% interval, each scorer's mean,
// JSON validity, latency, speed, memory, size, cost, whether it passes the suite's thresholds
// (and why not), a paired comparison with the first candidate (McNemar); then the verdict, the
// smallest candidate that passes. As a terminal table, report.json (docs/eval.md) and a
// self-contained HTML page.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/runner.h"
#include "eval/suite.h"

namespace owl::eval {

struct CandidateSummary {
  const CandidateRun* run = nullptr;
  int64_t passed = 0, total = 0;
  double pass_rate = 0, ci_low = 0, ci_high = 0;
  std::vector<std::pair<std::string, double>> scores;  // each scorer's mean, by label
  double json_valid = 0;          // share of outputs that parse as JSON
  double latency_p50_ms = 0, latency_p95_ms = 0, ttft_p50_ms = 0, ttft_p95_ms = 0;
  double tokens_per_s = 0;        // median per-sequence generation speed
  double cost_usd = 0;
  bool passes = false;
  std::string why;                // why it does not pass ("" when it does)
  // Against the first candidate, on the same cases and repeats (absent for the first itself).
  std::optional<int64_t> newly_failed, newly_passed;
  std::optional<double> mcnemar_p;
  std::vector<std::string> newly_failed_cases;
};

struct Verdict {
  std::string smallest_passing;   // "" when none passes
  std::string why;
};

struct Report {
  std::vector<CandidateSummary> candidates;
  Verdict verdict;
  bool interrupted = false;
};

Report summarize(const Suite& suite, const std::vector<CandidateRun>& runs);
// report.json, in the shape docs/eval.md documents.
nlohmann::ordered_json report_json(const Suite& suite, const Report& report, const std::vector<CandidateRun>& runs);
// The terminal table and the verdict under it.
std::string report_table(const Suite& suite, const Report& report);
// One page with no outside resources: the table, pass rate against size and against cost with
// the Pareto front, latency distributions and each failing case beside what was expected.
std::string report_html(const Suite& suite, const Report& report, const std::vector<CandidateRun>& runs);

}  // namespace owl::eval
