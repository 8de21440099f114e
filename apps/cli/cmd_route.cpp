// owl route calibrate: the escalation threshold of a route's cascade step, chosen from an owl eval
// report that ran the route's models on the same cases: the cheapest threshold that reaches the
// target accuracy, with the accuracy/cost curve across thresholds (docs/router.md).
#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common_options.h"
#include "core/files.h"
#include "eval/cascade.h"
#include "router/config.h"

namespace owl::cli {
namespace {

constexpr const char* kCommand = "owl route calibrate";

struct CalibrateArgs {
  std::string report, config, write, html, route, signal;
  double target = 0.95;
  size_t step = 0;
  std::vector<std::string> candidates;  // MODEL=ID
  bool json = false;
};

// US dollars with three significant digits and no exponent: 0.0000278, 0.00232, 1.50.
std::string dollars(double x) {
  const int digits = x > 0 ? std::clamp(2 - static_cast<int>(std::floor(std::log10(x))), 2, 12) : 2;
  return fmt::format("{:.{}f}", x, digits);
}

std::string point_label(const eval::CascadePoint& p) { return p.never ? "never" : fmt::format("{:.4g}", p.threshold); }

void print_curve(const eval::Calibration& cal, double target) {
  const std::string& small = cal.models[cal.step];
  const std::string rest = cal.step + 2 == cal.models.size() ? cal.models.back() : "the steps after it";
  fmt::print("route {}: {} then {}; {} chosen on {} cases\n", cal.route, small, rest, cal.signal, cal.curve.cases);
  for (const std::string& n : cal.notes) fmt::print("  note: {}\n", n);
  fmt::print("{:>10} {:>10} {:>9} {:>14}\n", "threshold", "escalated", "accuracy", "$ per 1k req");
  // Long curves are thinned to about 20 rows; the chosen point and both ends always show.
  const size_t n = cal.curve.points.size(), every = std::max<size_t>(1, (n + 19) / 20);
  for (size_t i = 0; i < n; ++i) {
    const bool chosen = cal.chosen && *cal.chosen == i;
    if (!(i % every == 0 || i + 1 == n || chosen)) continue;
    const eval::CascadePoint& p = cal.curve.points[i];
    fmt::print("{:>10} {:>9.1f}% {:>9.3f} {:>14}{}\n", point_label(p), 100 * p.escalation_rate, p.accuracy, dollars(p.cost_per_1k),
               chosen ? "  <- chosen" : "");
  }
  const eval::CascadePoint &a = cal.curve.step_alone, &b = cal.curve.rest_alone;
  fmt::print("always {:<12} accuracy {:.3f}, ${} per 1,000 requests\n", small, a.accuracy, dollars(a.cost_per_1k));
  fmt::print("always {:<12} accuracy {:.3f}, ${} per 1,000 requests\n", cal.models.back(), b.accuracy, dollars(b.cost_per_1k));
  if (!cal.chosen) {
    const auto best = std::max_element(cal.curve.points.begin(), cal.curve.points.end(),
                                       [](const auto& x, const auto& y) { return x.accuracy < y.accuracy; });
    fmt::print("no threshold reaches accuracy {}: the best is {:.3f} (threshold {})\n", target, best->accuracy, point_label(*best));
    return;
  }
  const eval::CascadePoint& c = cal.curve.points[*cal.chosen];
  fmt::print("chosen: {}: {} — accuracy {:.3f} (target {}), {:.1f}% escalated, ${} per 1,000 requests", cal.signal, point_label(c),
             c.accuracy, target, 100 * c.escalation_rate, dollars(c.cost_per_1k));
  if (b.cost_per_1k > 0) fmt::print(" ({:.0f}% of always {})", 100 * c.cost_per_1k / b.cost_per_1k, cal.models.back());
  fmt::print("\n");
}

nlohmann::ordered_json point_json(const eval::CascadePoint& p) {
  return {{"threshold", p.never ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(p.threshold)},
          {"escalated", p.escalated},
          {"escalation_rate", p.escalation_rate},
          {"passed", p.passed},
          {"accuracy", p.accuracy},
          {"cost_per_1k_usd", p.cost_per_1k}};
}

int run_calibrate(const CalibrateArgs& args) {
  const std::string config_path = !args.config.empty() ? args.config : !args.write.empty() ? args.write : "owl.yaml";
  if (!(args.target > 0 && args.target <= 1)) return fail(kCommand, fmt::format("--target {}: expected an accuracy in (0, 1]", args.target));
  eval::CalibrateOptions options{.route = args.route, .step = args.step, .signal = args.signal, .target = args.target};
  for (const std::string& c : args.candidates) {
    const size_t eq = c.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == c.size()) {
      return fail(kCommand, fmt::format("--candidate '{}': expected MODEL=CANDIDATE_ID", c));
    }
    options.candidates.emplace_back(c.substr(0, eq), c.substr(eq + 1));
  }
  if (!args.html.empty()) {
    if (int rc = fail_unless_writable(kCommand, args.html, "--html")) return rc;
  }
  auto text = core::read_file(config_path);
  if (!text) return fail(kCommand, fmt::format("--config {}", text.message()));
  auto config = router::parse_router_config(*text, config_path);
  if (!config) return fail(kCommand, config.message());
  auto report_text = core::read_file(args.report);
  if (!report_text) return fail(kCommand, fmt::format("--eval {}", report_text.message()));
  const nlohmann::json report = nlohmann::json::parse(*report_text, nullptr, false);
  if (report.is_discarded()) return fail(kCommand, fmt::format("--eval {}: not JSON (owl eval -o writes the report)", args.report));
  auto cal = eval::calibrate_route(report, *config, options);
  if (!cal) return fail(kCommand, fmt::format("{}: {}", args.report, cal.message()));

  if (args.json) {
    nlohmann::ordered_json j{{"route", cal->route}, {"step", cal->step}, {"signal", cal->signal}, {"target", args.target},
                             {"models", cal->models}, {"candidates", cal->candidate_ids}, {"cases", cal->curve.cases},
                             {"curve", nlohmann::ordered_json::array()}, {"notes", cal->notes}};
    for (const eval::CascadePoint& p : cal->curve.points) j["curve"].push_back(point_json(p));
    j["chosen"] = cal->chosen ? point_json(cal->curve.points[*cal->chosen]) : nlohmann::ordered_json(nullptr);
    j["always_first"] = point_json(cal->curve.step_alone);
    j["always_last"] = point_json(cal->curve.rest_alone);
    fmt::print("{}\n", j.dump(2));
  } else {
    print_curve(*cal, args.target);
  }
  std::fflush(stdout);
  const eval::CascadePoint* chosen = cal->chosen ? &cal->curve.points[*cal->chosen] : nullptr;
  if (!args.html.empty()) {
    const std::string rest = cal->models.back();
    std::string h = "<!doctype html><html><head><meta charset=\"utf-8\"><title>owl route calibrate: " + cal->route +
                    "</title><style>body{font:14px system-ui,sans-serif;margin:24px}svg{background:#fafafa;border:1px solid #ddd}</style></head><body>";
    h += fmt::format("<h1>Route {}: {} then {}</h1><p>{} across thresholds on {} cases; target accuracy {}.</p>", cal->route,
                     cal->models[cal->step], rest, cal->signal, cal->curve.cases, args.target);
    h += eval::cascade_svg(cal->curve, chosen, args.target, "calibration", cal->models[cal->step], rest);
    h += "</body></html>\n";
    if (auto s = core::write_file_atomic(args.html, h); !s) return fail(kCommand, s.message());
  }
  if (chosen == nullptr) return 3;
  if (!args.write.empty()) {
    if (chosen->never) {
      fmt::print(stderr, "{}: the chosen point escalates nothing; {} is set below every value seen ({:.4g})\n", kCommand, cal->signal,
                 chosen->threshold);
    }
    auto edited = router::set_escalation_threshold(*text, config_path, cal->route, cal->step, cal->signal, chosen->threshold);
    if (!edited) return fail(kCommand, edited.message());
    if (auto s = core::write_file_atomic(args.write, *edited); !s) return fail(kCommand, s.message());
    fmt::print(stderr, "wrote {}: route {} step {} ({}): {}: {:.4g}\n", args.write, cal->route, cal->step, cal->models[cal->step],
               cal->signal, chosen->threshold);
  }
  return 0;
}

}  // namespace

Command register_route(CLI::App& root) {
  CLI::App* app = root.add_subcommand("route", "Tools for the router's routes (owl serve --config)");
  app->require_subcommand(1);
  auto args = std::make_shared<CalibrateArgs>();
  CLI::App* cal = app->add_subcommand("calibrate", "Choose a cascade step's escalation threshold from an owl eval report");
  cal->add_option("--eval", args->report, "owl eval's report.json (-o), with the route's models run on the same cases")->required();
  cal->add_option("--route", args->route, "The route to calibrate")->required();
  cal->add_option("--config", args->config, "The router config (default: the --write file, else owl.yaml)");
  cal->add_option("--target", args->target, "The accuracy to reach")->capture_default_str();
  cal->add_option("--step", args->step, "The cascade step whose threshold is chosen (0: the first)")->capture_default_str();
  cal->add_option("--signal", args->signal, "mean_logprob_below or min_logprob_below (default: the one the step has)");
  cal->add_option("--candidate", args->candidates, "MODEL=ID: the report's candidate for a model of the route (repeatable)");
  cal->add_option("--write", args->write, "Write the config with the chosen threshold to this file (may be the --config file)");
  cal->add_option("--html", args->html, "Draw the accuracy/cost curve in this HTML file");
  cal->add_flag("--json", args->json, "The curve and the choice as JSON");
  return {app, [args, cal] {
            if (!cal->parsed()) return 1;
            return run_calibrate(*args);
          }};
}

}  // namespace owl::cli
