// A promotion gate (`owl models promote --eval SUITE`): the suite run on the version serving now
// (the baseline, first) and the candidate, on the same cases. The candidate may replace the
// baseline when it passes the suite's thresholds and is not significantly worse: fewer cases pass
// and McNemar's test on the cases that changed gives p < 0.05.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "eval/runner.h"
#include "eval/suite.h"

namespace owl::eval {

struct GateResult {
  bool promote = false;
  std::string why;                      // the decision, with the pass rates it rests on
  nlohmann::ordered_json report;        // report.json's shape
};

// The suite's own candidates are replaced by `baseline` (when there is one) and `candidate`.
core::Result<GateResult> run_gate(Suite suite, const std::optional<Candidate>& baseline, const Candidate& candidate,
                                  const RunOptions& options);

}  // namespace owl::eval
