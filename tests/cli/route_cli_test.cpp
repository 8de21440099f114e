// owl route calibrate as a user runs it: on the shipped example report it chooses the cheapest
// threshold that reaches the target and writes it into a copy of the shipped config, touching
// nothing else; from end to end (a Q4_0 copy of the embedded model first, a second owl standing
// in for the hosted model), the router then escalates exactly the requests the calibration
// said it would; mistakes are named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/owl_process.h"
#include "support/run_owl.h"

namespace {

using owl::testing::OwlProcess;
using owl::testing::run_owl;
using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kSource = OWL_SOURCE_DIR;
const std::string kModel = kSource + "/models/stories260K.gguf";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class RouteCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("owl-route-cli-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(RouteCli, TheShippedReportCalibratesTheShippedRouteAndWritesOnlyTheThreshold) {
  const std::string config = kSource + "/examples/router/owl.yaml";
  const std::string report = kSource + "/examples/router/report.json";
  std::filesystem::copy_file(config, path("owl.yaml"));
  const auto r = run_owl("route calibrate --eval " + report + " --route auto --target 0.95 --config " + config + " --write " +
                         path("owl.yaml") + " --html " + path("curve.html"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("route auto: small then big"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("<- chosen"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("always small"), std::string::npos) << r.out;

  const auto j = run_owl("route calibrate --eval " + report + " --route auto --target 0.95 --json --config " + config);
  ASSERT_EQ(j.exit_code, 0) << j.out;
  const Json cal = Json::parse(j.out);
  const Json& chosen = cal["chosen"];
  ASSERT_TRUE(chosen.is_object()) << j.out;
  EXPECT_GE(chosen["accuracy"].get<double>(), 0.95);
  EXPECT_LT(chosen["cost_per_1k_usd"].get<double>(), cal["always_last"]["cost_per_1k_usd"].get<double>());
  EXPECT_LT(cal["always_first"]["accuracy"].get<double>(), 0.95);
  // Nothing cheaper on the curve reaches the target; escalations only grow along it.
  size_t before = 0;
  for (const Json& p : cal["curve"]) {
    if (p["accuracy"].get<double>() >= 0.95) {
      EXPECT_GE(p["cost_per_1k_usd"].get<double>(), chosen["cost_per_1k_usd"].get<double>());
    }
    EXPECT_GE(p["escalated"].get<size_t>(), before);
    before = p["escalated"].get<size_t>();
  }
  // The written file is the shipped one but for the threshold.
  const std::string written = read_text(path("owl.yaml")), original = read_text(config);
  const std::string threshold = fmt::format("{:.4g}", chosen["threshold"].get<double>());
  std::string expected = original;
  const size_t at = expected.find("mean_logprob_below: -1.0");
  ASSERT_NE(at, std::string::npos);
  expected.replace(at, std::string("mean_logprob_below: -1.0").size(), "mean_logprob_below: " + threshold);
  EXPECT_EQ(written, expected);
  EXPECT_NE(read_text(path("curve.html")).find("class=\"chosen\""), std::string::npos);

  // A target out of reach: exit 3, nothing written.
  std::filesystem::copy_file(config, path("untouched.yaml"));
  std::ofstream(path("perfect.json")) << [&] {
    Json rep = Json::parse(read_text(report));
    for (Json& c : rep["cases"]) {
      if (c["case"] == "story-01") c["passed"] = false;  // neither model answers it
    }
    return rep.dump();
  }();
  const auto none = run_owl("route calibrate --eval " + path("perfect.json") + " --route auto --target 1 --write " + path("untouched.yaml"));
  EXPECT_EQ(none.exit_code, 3) << none.out;
  EXPECT_NE(none.out.find("no threshold reaches accuracy 1"), std::string::npos) << none.out;
  EXPECT_EQ(read_text(path("untouched.yaml")), original);
}

TEST_F(RouteCli, MistakesAreNamed) {
  const std::string config = kSource + "/examples/router/owl.yaml";
  const std::string report = kSource + "/examples/router/report.json";
  auto err = [&](const std::string& args) {
    const auto r = run_owl("route calibrate " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.out;
    return r.out;
  };
  EXPECT_NE(err("--eval " + report + " --route nope --config " + config).find("no route 'nope' (routes: auto)"), std::string::npos);
  EXPECT_NE(err("--eval " + report + " --route auto --step 1 --config " + config).find("the last never escalates"), std::string::npos);
  EXPECT_NE(err("--eval /no/such.json --route auto --config " + config).find("/no/such.json"), std::string::npos);
  EXPECT_NE(err("--eval " + config + " --route auto --config " + config).find("not JSON"), std::string::npos);
  EXPECT_NE(err("--eval " + report + " --route auto --target 1.5 --config " + config).find("--target 1.5"), std::string::npos);
  EXPECT_NE(err("--eval " + report + " --route auto --signal entropy_above --config " + config).find("entropy_above"), std::string::npos);
  EXPECT_NE(err("--eval " + report + " --route auto --candidate small --config " + config).find("MODEL=CANDIDATE_ID"), std::string::npos);
  EXPECT_NE(err("--eval " + report + " --route auto --candidate small=ghost --config " + config).find("'ghost'"), std::string::npos);
  // A report without the route's models names the model and what the report has.
  std::ofstream(path("other.json")) << R"({"candidates": [{"id": "x", "model": "/m.gguf"}], "cases": []})";
  EXPECT_NE(err("--eval " + path("other.json") + " --route auto --config " + config).find("model 'small' is none of the report's candidates (x)"),
            std::string::npos);
}

TEST_F(RouteCli, TheRouterEscalatesExactlyTheRequestsTheCalibrationPredicts) {
  const auto q = run_owl("quantize " + kModel + " " + path("small.gguf") + " q4_0");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  OwlProcess upstream("serve --port 0 -t 1 -m " + kModel);
  ASSERT_TRUE(upstream.wait_for_log("ready", 30s)) << upstream.log();
  const std::string base_url = "http://127.0.0.1:" + std::to_string(upstream.port()) + "/v1";
  std::ofstream(path("suite.yaml")) << "cases: " << kSource << "/examples/eval/stories/cases.jsonl\nprompt: \"{{story}}\"\n"
                                       "mode: completion\ntemperature: 0\nmax_tokens: 4\nscorers: [{type: regex}]\n"
                                       "candidates:\n  - {name: small, model: small.gguf}\n"
                                       "  - {name: big, base_url: \"" << base_url << "\", model: stories260K, "
                                       "price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}\n";
  std::ofstream(path("owl.yaml")) << "models:\n  - {name: small, path: " << path("small.gguf") << "}\n"
                                     "  - {name: big, base_url: \"" << base_url << "\", model: stories260K, "
                                     "price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}\n"
                                     "routes:\n  - name: auto\n    cascade:\n      - model: small\n        escalate_if:\n"
                                     "          empty: true\n      - big\n";
  const auto e = run_owl("eval " + path("suite.yaml") + " -q -t 1 --cache-dir " + path("cache") + " -o " + path("report.json"));
  ASSERT_TRUE(e.exit_code == 0 || e.exit_code == 3) << e.out;
  // escalate_if has no mean_logprob_below yet: calibrate adds it to the block mapping.
  const auto c = run_owl("route calibrate --eval " + path("report.json") + " --route auto --target 0.9 --json --write " + path("owl.yaml"));
  ASSERT_EQ(c.exit_code, 0) << c.out;
  const size_t open = c.out.find('{'), close = c.out.rfind('}');
  ASSERT_TRUE(open != std::string::npos && close != std::string::npos) << c.out;
  const Json cal = Json::parse(c.out.substr(open, close - open + 1));
  const double threshold = cal["chosen"]["threshold"];
  const std::string config = read_text(path("owl.yaml"));
  EXPECT_NE(config.find("          mean_logprob_below: " + fmt::format("{:.4g}", threshold) + "\n          empty: true\n"), std::string::npos)
      << config;

  OwlProcess router("serve --port 0 -t 1 --config " + path("owl.yaml"));
  ASSERT_TRUE(router.wait_for_log("ready", 30s)) << router.log();
  httplib::Client client("127.0.0.1", router.port());
  client.set_read_timeout(30s);
  std::ifstream cases(kSource + "/examples/eval/stories/cases.jsonl");
  std::string line;
  size_t escalated = 0, n = 0;
  while (std::getline(cases, line)) {
    const Json kase = Json::parse(line);
    const Json body{{"model", "auto"}, {"prompt", kase["story"]}, {"max_tokens", 4}, {"temperature", 0}};
    auto res = client.Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(res) << kase["id"];
    ASSERT_EQ(res->status, 200) << res->body;
    escalated += res->get_header_value("x-owl-route") == "escalated";
    ++n;
  }
  EXPECT_EQ(n, 25u);
  EXPECT_EQ(escalated, cal["chosen"]["escalated"].get<size_t>()) << c.out;
}

}  // namespace
