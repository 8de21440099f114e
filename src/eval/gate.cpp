#include "eval/gate.h"

#include <fmt/format.h>

#include "eval/report.h"

namespace owl::eval {

core::Result<GateResult> run_gate(Suite suite, const std::optional<Candidate>& baseline, const Candidate& candidate,
                                  const RunOptions& options) {
  suite.candidates.clear();
  if (baseline) suite.candidates.push_back(*baseline);
  suite.candidates.push_back(candidate);
  if (baseline && baseline->id == candidate.id) suite.candidates.back().id += " (candidate)";
  auto runs = run_suite(suite, options);
  if (!runs) return runs.error();
  for (const CandidateRun& r : *runs) {
    if (!r.failure.empty()) return core::make_error("{}: {}", r.candidate.id, r.failure);
  }
  const Report report = summarize(suite, *runs);
  if (report.interrupted || report.candidates.size() != suite.candidates.size()) return core::make_error("the eval was interrupted");
  const CandidateSummary& c = report.candidates.back();
  GateResult g{.report = report_json(suite, report, *runs)};
  const std::string rate = fmt::format("{} of {} cases pass ({:.3f}, 95% interval {:.3f}-{:.3f})", c.passed, c.total, c.pass_rate,
                                       c.ci_low, c.ci_high);
  if (!c.passes) {
    g.why = fmt::format("the candidate fails the suite's thresholds: {}; {}", c.why, rate);
    return g;
  }
  if (baseline) {
    const CandidateSummary& b = report.candidates.front();
    const bool worse = c.pass_rate < b.pass_rate && c.mcnemar_p && *c.mcnemar_p < 0.05;
    if (worse) {
      g.why = fmt::format("the candidate is significantly worse than the version serving now: {} against {} of {} "
                          "(McNemar p = {:.3f}, {} cases newly failed)",
                          rate, b.passed, b.total, *c.mcnemar_p, c.newly_failed.value_or(0));
      return g;
    }
    g.promote = true;
    g.why = fmt::format("the candidate passes the suite and is not significantly worse: {} against {} of {}{}", rate, b.passed, b.total,
                        c.mcnemar_p ? fmt::format(" (McNemar p = {:.3f})", *c.mcnemar_p) : "");
    return g;
  }
  g.promote = true;
  g.why = fmt::format("the candidate passes the suite: {}", rate);
  return g;
}

}  // namespace owl::eval
