// What a cascade of models would do on an eval's cases: the first model answers every case, and
// a case whose confidence signal falls below a threshold is escalated to the models after it.
// Sweeping the threshold gives the accuracy/cost curve the router's escalate_if is calibrated
// from (owl route calibrate, docs/router.md), and the eval HTML report draws it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "router/config.h"

namespace owl::eval {

struct CascadeOutcome {
  bool passed = false;
  double cost_usd = 0;
};

// One case (one repeat of it) as the cascade meets it at the step being calibrated.
struct CascadeCase {
  std::string id;
  std::optional<CascadeOutcome> settled;  // answered by a step before this one (its cost included)
  double cost_before = 0;                 // what the steps before this one cost
  std::optional<double> signal;           // the step's confidence signal; none: never escalated by it
  bool forced = false;                    // escalated whatever the threshold (an error, another rule)
  CascadeOutcome step;                    // this step's answer
  CascadeOutcome rest;                    // the answer of the steps after it (their costs summed)
};

// The route with "escalate when signal < threshold".
struct CascadePoint {
  double threshold = 0;     // to write in the config (meaningless for `never`)
  bool never = false;       // no case escalates by the signal
  size_t escalated = 0;     // cases that reach the steps after it
  size_t passed = 0;
  double accuracy = 0;
  double escalation_rate = 0;
  double cost_per_1k = 0;   // US dollars per 1,000 requests
};

struct CascadeCurve {
  size_t cases = 0;
  std::vector<CascadePoint> points;  // never first, then ever more cases escalated
  CascadePoint step_alone;           // this step answers everything (no escalation at all)
  CascadePoint rest_alone;           // the steps after it answer everything (this one is not asked)
};

CascadeCurve cascade_curve(const std::vector<CascadeCase>& cases);

// The cheapest point whose accuracy reaches `target` (ties: the more accurate, then the fewer
// escalations); nullptr when none does.
const CascadePoint* cheapest_reaching(const CascadeCurve& curve, double target);

// An SVG drawing of the curve: accuracy against cost per 1,000 requests, with the two "alone"
// points, the target as a dashed line and the chosen point marked.
std::string cascade_svg(const CascadeCurve& curve, const CascadePoint* chosen, std::optional<double> target,
                        const std::string& id, const std::string& step_name, const std::string& rest_name);

// Calibration of one route's cascade step from an owl eval report.json that ran the route's
// models on the same cases.
struct CalibrateOptions {
  std::string route;
  size_t step = 0;                   // the cascade step whose threshold is chosen
  std::string signal;                // mean_logprob_below or min_logprob_below; "": the one the step has
  double target = 0.95;              // accuracy to reach
  // step model name -> report candidate id, for models whose candidate is not found by name or path.
  std::vector<std::pair<std::string, std::string>> candidates;
};

struct Calibration {
  std::string route, signal;
  size_t step = 0;
  std::vector<std::string> models;      // the cascade's models, in order
  std::vector<std::string> candidate_ids;  // the report's candidate for each
  CascadeCurve curve;
  std::optional<size_t> chosen;          // index into curve.points; none when the target is out of reach
  std::vector<std::string> notes;        // rules of the config the report cannot judge, and the like
};

core::Result<Calibration> calibrate_route(const nlohmann::json& report, const router::RouterConfig& config,
                                          const CalibrateOptions& options);

}  // namespace owl::eval
