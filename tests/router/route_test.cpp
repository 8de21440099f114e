// A cascade step's confidence and the rules that escalate it.
#include "router/route_provider.h"

#include <gtest/gtest.h>

#include <cmath>

namespace owl::router {
namespace {

sample::Sampled token(float logprob, std::vector<float> top = {}) {
  sample::Sampled s;
  s.logprob = logprob;
  for (size_t i = 0; i < top.size(); ++i) s.top.push_back({static_cast<int32_t>(i), top[i]});
  return s;
}

TEST(Route, ConfidenceIsTheMeanTheLeastAndTheEntropyOfTheTokens) {
  const float half = std::log(0.5f);
  const Confidence c = measure_confidence({token(0.0f, {0.0f}), token(half, {half, half}), token(-3.0f, {-0.1f, -3.0f})});
  EXPECT_EQ(c.n_tokens, 3);
  EXPECT_NEAR(c.mean_logprob, (0.0 + half - 3.0) / 3, 1e-6);
  EXPECT_NEAR(c.min_logprob, -3.0, 1e-6);
  // Entropies: 0 (one certain token), ln 2 (two halves), and that of the third, renormalized.
  const double p = std::exp(-0.1), q = std::exp(-3.0), z = p + q;
  const double h3 = -(p / z) * std::log(p / z) - (q / z) * std::log(q / z);
  EXPECT_NEAR(c.mean_entropy, (0.0 + std::log(2.0) + h3) / 3, 1e-6);
  EXPECT_EQ(measure_confidence({}).n_tokens, 0);
}

TEST(Route, EachRuleEscalatesOnlyWhenItHolds) {
  CompletionRequest req;
  const Confidence sure = measure_confidence({token(-0.1f, {-0.1f, -3.0f})});
  const Confidence unsure = measure_confidence({token(-2.0f, {-0.7f, -0.7f}), token(-0.5f, {-0.7f, -0.7f})});
  EXPECT_EQ(escalation_reason({.mean_logprob_below = -1.0}, req, "x", sure), "");
  EXPECT_EQ(escalation_reason({.mean_logprob_below = -1.0}, req, "x", unsure), "mean_logprob -1.250 < -1");
  EXPECT_EQ(escalation_reason({.min_logprob_below = -1.5}, req, "x", unsure), "min_logprob -2.000 < -1.5");
  EXPECT_EQ(escalation_reason({.entropy_above = 0.5}, req, "x", sure), "");
  EXPECT_EQ(escalation_reason({.entropy_above = 0.5}, req, "x", unsure), "entropy 0.693 > 0.5");
  EXPECT_EQ(escalation_reason({.empty = true}, req, " \n", sure), "empty answer");
  EXPECT_EQ(escalation_reason({.empty = true}, req, "ok", sure), "");
  EXPECT_EQ(escalation_reason({.json_invalid = true}, req, "{\"a\": 1}", sure), "");
  EXPECT_EQ(escalation_reason({.json_invalid = true}, req, "{\"a\": ", sure), "the answer is not JSON");
  // The schema's grammar judges the answer; a request without a schema has nothing to fail.
  EXPECT_EQ(escalation_reason({.schema_invalid = true}, req, "nonsense", sure), "");
  req.json_output = true;
  req.grammar = "root ::= \"{\" ws \"\\\"n\\\"\" ws \":\" ws [0-9]+ ws \"}\"\nws ::= [ ]?";
  EXPECT_EQ(escalation_reason({.schema_invalid = true}, req, "{\"n\": 12}", sure), "");
  EXPECT_EQ(escalation_reason({.schema_invalid = true}, req, "{\"n\": \"12\"}", sure), "the answer does not satisfy the schema");
  // No tokens measured (a hosted answer): the log-probability rules cannot hold.
  EXPECT_EQ(escalation_reason({.mean_logprob_below = -0.1}, req, "x", Confidence{}), "");
}

}  // namespace
}  // namespace owl::router
