// The cascade curve: each threshold's accuracy, escalations and cost counted by hand; the
// cheapest point reaching a target; calibration from a report with three steps, with the
// configured rules of the other steps applied.
#include <gtest/gtest.h>

#include "eval/cascade.h"

namespace owl::eval {
namespace {

using Json = nlohmann::json;

CascadeCase make(const char* id, double signal, bool small_ok, bool big_ok) {
  return CascadeCase{.id = id, .signal = signal, .step = {small_ok, 1e-6}, .rest = {big_ok, 1e-3}};
}

TEST(Cascade, EachThresholdCountsItsEscalationsAccuracyAndCost) {
  // Low confidence goes with small's failures, except d (confident and wrong).
  const std::vector<CascadeCase> cases = {make("a", -2.0, false, true), make("b", -1.5, false, true), make("c", -1.0, true, true),
                                          make("d", -0.2, false, false), make("e", -0.1, true, true)};
  const CascadeCurve curve = cascade_curve(cases);
  ASSERT_EQ(curve.points.size(), 6u);  // never, then 1..5 escalated
  EXPECT_TRUE(curve.points[0].never);
  for (size_t i = 0; i < curve.points.size(); ++i) EXPECT_EQ(curve.points[i].escalated, i);
  const std::vector<size_t> passed = {2, 3, 4, 4, 4, 4};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(curve.points[i].passed, passed[i]) << i;
  // Thresholds sit between neighbours: escalate when signal < threshold.
  EXPECT_LT(curve.points[0].threshold, -2.0);
  EXPECT_GT(curve.points[1].threshold, -2.0);
  EXPECT_LT(curve.points[1].threshold, -1.5);
  EXPECT_GT(curve.points[5].threshold, -0.1);
  EXPECT_LE(curve.points[5].threshold, 0.0);
  // Small always costs; big only when escalated. Per 1,000 requests.
  EXPECT_NEAR(curve.points[2].cost_per_1k, (5 * 1e-6 + 2 * 1e-3) / 5 * 1000, 1e-12);
  EXPECT_NEAR(curve.step_alone.accuracy, 0.4, 1e-12);
  EXPECT_NEAR(curve.rest_alone.accuracy, 0.8, 1e-12);
  EXPECT_NEAR(curve.rest_alone.cost_per_1k, 1.0, 1e-12);

  const CascadePoint* p = cheapest_reaching(curve, 0.8);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->escalated, 2u);  // the first point at 0.8; more escalations cost more for nothing
  EXPECT_EQ(cheapest_reaching(curve, 0.81), nullptr);
  EXPECT_EQ(cheapest_reaching(curve, 0.4)->escalated, 0u);
}

TEST(Cascade, ForcedAndSettledCasesIgnoreTheThreshold) {
  std::vector<CascadeCase> cases = {make("a", -1.0, true, false), make("b", -0.5, true, true)};
  cases[0].forced = true;  // small failed: it goes up whatever the threshold
  cases.push_back(CascadeCase{.id = "c", .settled = CascadeOutcome{true, 5e-3}});
  const CascadeCurve curve = cascade_curve(cases);
  ASSERT_EQ(curve.points.size(), 2u);
  EXPECT_EQ(curve.points[0].escalated, 1u);
  EXPECT_EQ(curve.points[0].passed, 2u);  // a fails at big; b and c pass
  EXPECT_EQ(curve.points[1].escalated, 2u);
  EXPECT_NEAR(curve.points[0].cost_per_1k, (2e-6 + 1e-3 + 5e-3) / 3 * 1000, 1e-12);
}

TEST(Cascade, CalibratesTheMiddleStepOfThreeWithTheOthersRules) {
  auto config = router::parse_router_config(R"(
models:
  - {name: a, path: a.gguf}
  - {name: b, path: b.gguf}
  - {name: c, base_url: "http://127.0.0.1:1/v1"}
routes:
  - name: r
    cascade:
      - {model: a, escalate_if: {empty: true}}
      - {model: b, escalate_if: {min_logprob_below: -1}}
      - c
)", "r.yaml");
  ASSERT_TRUE(config) << config.message();
  Json report = {{"candidates", {{{"id", "a"}, {"model", "a.gguf"}}, {{"id", "b-id"}, {"model", "b.gguf"}}, {{"id", "c"}, {"model", "x"}}}},
                 {"cases", Json::array()}};
  auto add = [&](const char* cand, const char* id, bool passed, const char* output, double min_lp) {
    report["cases"].push_back({{"candidate", cand}, {"case", id}, {"repeat", 0}, {"passed", passed}, {"output", output},
                               {"cost_usd", 1.0}, {"confidence", {{"mean_logprob", -0.1}, {"min_logprob", min_lp}}}});
  };
  add("a", "1", true, "yes", -5), add("b-id", "1", false, "", -9), add("c", "1", false, "", 0);   // a answers (not empty)
  add("a", "2", false, " ", -5), add("b-id", "2", false, "x", -2), add("c", "2", true, "x", 0);   // a empty: b, then c below -1.5
  add("a", "3", false, "", -5), add("b-id", "3", true, "x", -0.5), add("c", "3", true, "x", 0);   // b keeps it above -0.7
  CalibrateOptions options{.route = "r", .step = 1, .target = 1.0};
  options.candidates = {{"b", "b-id"}};  // matched by name, not found by its id
  auto cal = calibrate_route(report, *config, options);
  ASSERT_TRUE(cal) << cal.message();
  EXPECT_EQ(cal->signal, "min_logprob_below");
  EXPECT_EQ(cal->candidate_ids, (std::vector<std::string>{"a", "b-id", "c"}));
  ASSERT_TRUE(cal->chosen);
  const CascadePoint& p = cal->curve.points[*cal->chosen];
  EXPECT_EQ(p.passed, 3u);
  EXPECT_EQ(p.escalated, 1u);  // case 2 only
  EXPECT_GT(p.threshold, -2.0);
  EXPECT_LE(p.threshold, -0.5);
  // Case 1 costs a's answer; 2 and 3 cost a and b, and 2 c as well: 1 + 3 + 2 = 6 for 3 requests.
  EXPECT_NEAR(p.cost_per_1k, 6.0 / 3 * 1000, 1e-9);

  // The calibrated step without log-probabilities in the report is named.
  for (Json& c : report["cases"]) c["confidence"] = {{"mean_logprob", nullptr}, {"min_logprob", nullptr}};
  auto none = calibrate_route(report, *config, options);
  ASSERT_FALSE(none);
  EXPECT_NE(none.message().find("candidate 'b-id' has no min_logprob"), std::string::npos) << none.message();
}

}  // namespace
}  // namespace owl::eval
