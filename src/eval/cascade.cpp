#include "eval/cascade.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "template/value.h"

namespace owl::eval {
namespace {

using Json = nlohmann::json;

// The threshold as the config file will hold it (4 significant digits), so that the curve
// describes exactly what the router will do with the written value.
double written(double t) { return std::stod(fmt::format("{:.4g}", t)); }

CascadePoint evaluate(const std::vector<CascadeCase>& cases, double threshold, bool never) {
  CascadePoint p{.threshold = threshold, .never = never};
  double cost = 0;
  for (const CascadeCase& c : cases) {
    if (c.settled) {
      p.passed += c.settled->passed;
      cost += c.settled->cost_usd;
      continue;
    }
    const bool up = c.forced || (!never && c.signal && *c.signal < threshold);
    p.escalated += up;
    p.passed += up ? c.rest.passed : c.step.passed;
    cost += c.cost_before + c.step.cost_usd + (up ? c.rest.cost_usd : 0);
  }
  const double n = static_cast<double>(std::max<size_t>(cases.size(), 1));
  p.accuracy = static_cast<double>(p.passed) / n;
  p.escalation_rate = static_cast<double>(p.escalated) / n;
  p.cost_per_1k = cost / n * 1000;
  return p;
}

CascadePoint alone(const std::vector<CascadeCase>& cases, bool rest) {
  CascadePoint p;
  double cost = 0;
  for (const CascadeCase& c : cases) {
    const CascadeOutcome& o = rest ? c.rest : c.step;
    p.passed += o.passed;
    cost += o.cost_usd;
  }
  const double n = static_cast<double>(std::max<size_t>(cases.size(), 1));
  p.accuracy = static_cast<double>(p.passed) / n;
  p.escalation_rate = rest ? 1 : 0;
  p.escalated = rest ? cases.size() : 0;
  p.cost_per_1k = cost / n * 1000;
  return p;
}

}  // namespace

CascadeCurve cascade_curve(const std::vector<CascadeCase>& cases) {
  CascadeCurve curve;
  curve.cases = cases.size();
  std::vector<double> values;
  for (const CascadeCase& c : cases) {
    if (!c.settled && !c.forced && c.signal) values.push_back(*c.signal);
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  // Never: a threshold below every value seen. Then one between each pair of neighbours, and
  // one above the largest (when that is below 0, the config's upper bound).
  curve.points.push_back(evaluate(cases, values.empty() ? -1 : std::max(-1000.0, written(values.front() - 0.5)), true));
  for (size_t i = 0; i < values.size(); ++i) {
    const double hi = i + 1 < values.size() ? values[i + 1] : 0.0;
    if (hi <= values[i]) continue;
    const double t = written((values[i] + hi) / 2);
    if (!(t > values[i] && t <= hi)) continue;  // no 4-digit value between them
    CascadePoint p = evaluate(cases, t, false);
    if (p.escalated == curve.points.back().escalated) continue;
    curve.points.push_back(p);
  }
  curve.step_alone = alone(cases, false);
  curve.rest_alone = alone(cases, true);
  return curve;
}

const CascadePoint* cheapest_reaching(const CascadeCurve& curve, double target) {
  const CascadePoint* best = nullptr;
  for (const CascadePoint& p : curve.points) {
    if (p.accuracy + 1e-12 < target) continue;
    if (best == nullptr || p.cost_per_1k < best->cost_per_1k - 1e-15 ||
        (std::abs(p.cost_per_1k - best->cost_per_1k) <= 1e-15 &&
         (p.accuracy > best->accuracy || (p.accuracy == best->accuracy && p.escalated < best->escalated)))) {
      best = &p;
    }
  }
  return best;
}

std::string cascade_svg(const CascadeCurve& curve, const CascadePoint* chosen, std::optional<double> target, const std::string& id,
                        const std::string& step_name, const std::string& rest_name) {
  const double W = 480, H = 300, L = 56, B = 42, T = 14, R = 20;
  std::string svg = fmt::format("<svg id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">", tmpl::html_escape(id), W, H, W, H);
  std::vector<const CascadePoint*> all;
  for (const CascadePoint& p : curve.points) all.push_back(&p);
  all.push_back(&curve.step_alone);
  all.push_back(&curve.rest_alone);
  double lo = all[0]->cost_per_1k, hi = lo, alo = 1, ahi = 0;
  for (const CascadePoint* p : all) {
    lo = std::min(lo, p->cost_per_1k), hi = std::max(hi, p->cost_per_1k);
    alo = std::min(alo, p->accuracy), ahi = std::max(ahi, p->accuracy);
  }
  if (target) alo = std::min(alo, *target), ahi = std::max(ahi, *target);
  if (hi - lo < 1e-15) hi = lo + std::max(std::abs(lo), 1e-9);
  alo = std::max(0.0, std::floor(alo * 10 - 0.5) / 10), ahi = std::min(1.0, std::max(ahi, alo + 0.1));
  auto X = [&](double v) { return L + (v - lo) / (hi - lo) * (W - L - R); };
  auto Y = [&](double a) { return T + (ahi - a) / (ahi - alo) * (H - T - B); };
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>", L, H - B, W - R, H - B);
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>", L, T, L, H - B);
  for (double a : {alo, (alo + ahi) / 2, ahi}) {
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{:.2f}</text>", L - 4, Y(a) + 3, a);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">${:.3g}</text>", L, H - B + 14, lo);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">${:.3g}</text>", W - R, H - B + 14, hi);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">cost per 1,000 requests (US$)</text>", (L + W - R) / 2, H - 8);
  svg += fmt::format("<text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">accuracy</text>", H / 2, H / 2);
  if (target) {
    svg += fmt::format("<line class=\"target\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>", L, Y(*target), W - R, Y(*target));
  }
  std::string line;
  for (const CascadePoint& p : curve.points) line += fmt::format("{:.1f},{:.1f} ", X(p.cost_per_1k), Y(p.accuracy));
  svg += "<polyline class=\"curve\" fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\" points=\"" + line + "\"/>";
  for (const CascadePoint& p : curve.points) {
    const bool is_chosen = &p == chosen;
    svg += fmt::format("<circle class=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"><title>{}: accuracy {:.3f}, escalates {:.1f}%, ${:.4g} per 1,000</title></circle>",
                       is_chosen ? "chosen" : "cascade-point", X(p.cost_per_1k), Y(p.accuracy), is_chosen ? 6 : 3, is_chosen ? "#0a0" : "#36c",
                       p.never ? std::string("never escalate") : fmt::format("threshold {:.4g}", p.threshold), p.accuracy,
                       100 * p.escalation_rate, p.cost_per_1k);
  }
  for (const auto& [p, name] : {std::pair{&curve.step_alone, &step_name}, std::pair{&curve.rest_alone, &rest_name}}) {
    svg += fmt::format("<rect class=\"alone\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"8\" height=\"8\" fill=\"#f80\"><title>{} alone: accuracy {:.3f}, ${:.4g} per 1,000</title></rect>",
                       X(p->cost_per_1k) - 4, Y(p->accuracy) - 4, tmpl::html_escape(*name), p->accuracy, p->cost_per_1k);
    const bool right = X(p->cost_per_1k) > W / 2;  // label on the side with room
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"{}\">{} alone</text>",
                       X(p->cost_per_1k) + (right ? -7 : 7), Y(p->accuracy) + 14, right ? "end" : "start", tmpl::html_escape(*name));
  }
  return svg + "</svg>";
}

namespace {

struct ReportCase {
  bool passed = false;
  double cost = 0;
  bool error = false;
  std::optional<double> mean_logprob, min_logprob;
  std::string output;
};

// Fields of a report that may have been edited by hand: a wrong type reads as absent.
std::optional<double> number_at(const Json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? std::optional<double>(it->get<double>()) : std::nullopt;
}
std::string string_at(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
bool bool_at(const Json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// Whether the configured rules of a step (all but `skip`, the signal being calibrated) escalate
// this answer; rules a report cannot judge are noted once.
bool rules_escalate(const router::Escalation& e, const ReportCase& c, const std::string& skip, std::vector<std::string>& notes,
                    const std::string& model) {
  if (c.error) return true;
  if (skip != "mean_logprob_below" && e.mean_logprob_below && c.mean_logprob && *c.mean_logprob < *e.mean_logprob_below) return true;
  if (skip != "min_logprob_below" && e.min_logprob_below && c.min_logprob && *c.min_logprob < *e.min_logprob_below) return true;
  if (e.empty && blank(c.output)) return true;
  if (e.json_invalid && Json::parse(c.output, nullptr, false).is_discarded()) return true;
  auto note = [&](const std::string& n) {
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
  };
  if (e.entropy_above) note(fmt::format("{}: entropy_above is not in an eval report; the curve leaves it out", model));
  if (e.schema_invalid) note(fmt::format("{}: schema_invalid is not judged from a report; the curve leaves it out", model));
  return false;
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

// The report's candidate for a model of the config: named with --candidate, or whose id is the
// model's name, or whose model file (or hosted URL and id) is the model's, unquantized and with
// the same adapter.
core::Result<std::string> candidate_for(const Json& report, const router::ModelSpec& m, const CalibrateOptions& options) {
  for (const auto& [model, id] : options.candidates) {
    if (model == m.name) return id;
  }
  std::vector<std::string> ids, by_file;
  for (const Json& c : report.at("candidates")) {
    const std::string id = string_at(c, "id");
    ids.push_back(id);
    if (id == m.name) return id;
  }
  for (const Json& c : report.at("candidates")) {
    const std::string model = string_at(c, "model"), adapter = string_at(c, "adapter");
    const bool quantized = !string_at(c, "quant").empty();
    bool same = false;
    if (m.local()) {
      same = !quantized && canonical(model) == canonical(m.path) &&
             (m.lora.empty() ? adapter.empty() : (m.lora.size() == 1 && !adapter.empty() && canonical(adapter) == canonical(m.lora[0].path)));
    } else {
      same = model == m.base_url + " " + (m.model.empty() ? m.name : m.model);
    }
    if (same) by_file.push_back(string_at(c, "id"));
  }
  if (by_file.size() == 1) return by_file[0];
  return core::make_error("model '{}' is {} of the report's candidates ({}); name it with --candidate {}=ID",
                          m.name, by_file.empty() ? "none" : "several", fmt::format("{}", fmt::join(by_file.empty() ? ids : by_file, ", ")), m.name);
}

}  // namespace

core::Result<Calibration> calibrate_route(const Json& report, const router::RouterConfig& config, const CalibrateOptions& options) {
  if (!report.is_object() || !report.contains("candidates") || !report["candidates"].is_array() || !report.contains("cases") ||
      !report["cases"].is_array()) {
    return core::make_error("the report has no candidates and cases (is it owl eval's report.json, from -o?)");
  }
  const router::RouteSpec* route = nullptr;
  std::vector<std::string> names;
  for (const router::RouteSpec& r : config.routes) {
    names.push_back(r.name);
    if (r.name == options.route) route = &r;
  }
  if (route == nullptr) return core::make_error("{} has no route '{}' (routes: {})", config.file, options.route, fmt::join(names, ", "));
  if (options.step + 1 >= route->cascade.size()) {
    return core::make_error("route '{}' has {} cascade step(s): step {} is the last or beyond it, and the last never escalates",
                            route->name, route->cascade.size(), options.step);
  }
  Calibration cal{.route = route->name, .step = options.step};
  const router::Escalation& rules = route->cascade[options.step].escalate_if;
  cal.signal = options.signal;
  if (cal.signal.empty()) cal.signal = rules.min_logprob_below && !rules.mean_logprob_below ? "min_logprob_below" : "mean_logprob_below";
  if (cal.signal != "mean_logprob_below" && cal.signal != "min_logprob_below") {
    return core::make_error("--signal {}: an eval report records mean_logprob_below and min_logprob_below", cal.signal);
  }
  // Each model's cases, by case id and repeat.
  std::vector<std::map<std::pair<std::string, int>, ReportCase>> by_step;
  for (const router::CascadeStep& s : route->cascade) {
    const router::ModelSpec* m = config.find_model(s.model);
    auto id = candidate_for(report, *m, options);
    if (!id) return id.error();
    cal.models.push_back(s.model);
    cal.candidate_ids.push_back(*id);
    std::map<std::pair<std::string, int>, ReportCase> cases;
    for (const Json& c : report.at("cases")) {
      if (!c.is_object() || string_at(c, "candidate") != *id) continue;
      ReportCase rc;
      rc.passed = bool_at(c, "passed");
      rc.cost = number_at(c, "cost_usd").value_or(0.0);
      rc.error = c.contains("error");
      rc.output = string_at(c, "output");
      if (auto conf = c.find("confidence"); conf != c.end()) {
        rc.mean_logprob = number_at(*conf, "mean_logprob");
        rc.min_logprob = number_at(*conf, "min_logprob");
      }
      const auto kase = c.find("case");
      const std::string key = kase == c.end() ? "" : kase->is_string() ? kase->get<std::string>() : kase->dump();
      const double repeat = number_at(c, "repeat").value_or(0.0);
      cases[{key, std::isfinite(repeat) && std::abs(repeat) < 1e9 ? static_cast<int>(repeat) : 0}] = std::move(rc);
    }
    if (cases.empty()) return core::make_error("the report has no cases of candidate '{}' (model '{}')", *id, s.model);
    by_step.push_back(std::move(cases));
  }
  // The cases every step answered.
  std::vector<CascadeCase> cases;
  size_t missing = 0, with_signal = 0;
  for (const auto& [key, first] : by_step[0]) {
    bool everywhere = true;
    for (const auto& step : by_step) everywhere = everywhere && step.count(key);
    if (!everywhere) {
      ++missing;
      continue;
    }
    CascadeCase c{.id = key.first};
    // Steps before the calibrated one, with their configured rules.
    for (size_t k = 0; k < options.step && !c.settled; ++k) {
      const ReportCase& r = by_step[k].at(key);
      c.cost_before += r.cost;
      if (!rules_escalate(route->cascade[k].escalate_if, r, "", cal.notes, cal.models[k])) c.settled = CascadeOutcome{r.passed, c.cost_before};
    }
    const ReportCase& here = by_step[options.step].at(key);
    c.step = {here.passed, here.cost};
    c.signal = cal.signal == "mean_logprob_below" ? here.mean_logprob : here.min_logprob;
    with_signal += c.signal.has_value();
    c.forced = rules_escalate(rules, here, cal.signal, cal.notes, cal.models[options.step]);
    // Steps after it, with their configured rules.
    for (size_t k = options.step + 1; k < route->cascade.size(); ++k) {
      const ReportCase& r = by_step[k].at(key);
      c.rest.cost_usd += r.cost;
      if (k + 1 == route->cascade.size() || !rules_escalate(route->cascade[k].escalate_if, r, "", cal.notes, cal.models[k])) {
        c.rest.passed = r.passed;
        break;
      }
    }
    cases.push_back(std::move(c));
  }
  if (cases.empty()) return core::make_error("no case of the report was answered by every model of route '{}'", route->name);
  if (with_signal == 0) {
    return core::make_error("candidate '{}' has no {} in the report: its answers carry no log-probabilities (a hosted API that returns none?)",
                            cal.candidate_ids[options.step], cal.signal == "mean_logprob_below" ? "mean_logprob" : "min_logprob");
  }
  if (missing > 0) cal.notes.push_back(fmt::format("{} case(s) of '{}' are missing from another model's and are left out", missing, cal.candidate_ids[0]));
  cal.curve = cascade_curve(cases);
  if (const CascadePoint* p = cheapest_reaching(cal.curve, options.target)) cal.chosen = static_cast<size_t>(p - cal.curve.points.data());
  return cal;
}

}  // namespace owl::eval
