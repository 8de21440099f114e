#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "eval/cascade.h"
#include "eval/stats.h"
#include "template/value.h"

namespace owl::eval {
namespace {

using tmpl::html_escape;

constexpr double kMiB = 1024.0 * 1024.0;

double rank_value(const Suite& suite, const CandidateSummary& s) {
  switch (suite.rank_by) {
    case RankBy::kSize: return static_cast<double>(s.run->size_bytes);
    case RankBy::kMemory: return static_cast<double>(s.run->peak_rss_bytes);
    case RankBy::kCost: return s.cost_usd;
    case RankBy::kLatency: return s.latency_p95_ms;
  }
  return 0;
}

std::string rank_text(const Suite& suite, const CandidateSummary& s) {
  switch (suite.rank_by) {
    case RankBy::kSize: return fmt::format("{:.2f} MB", static_cast<double>(s.run->size_bytes) / kMiB);
    case RankBy::kMemory: return fmt::format("{:.1f} MB peak RSS", static_cast<double>(s.run->peak_rss_bytes) / kMiB);
    case RankBy::kCost: return fmt::format("${:.6f}", s.cost_usd);
    case RankBy::kLatency: return fmt::format("{:.1f} ms p95", s.latency_p95_ms);
  }
  return "";
}

// Why `s` misses the thresholds; "" when it meets them all.
std::string check(const Suite& suite, const CandidateSummary& s) {
  const Thresholds& t = suite.thresholds;
  std::vector<std::string> misses;
  if (t.pass_rate) {
    const double got = t.use_lower_bound ? s.ci_low : s.pass_rate;
    if (got + 1e-12 < *t.pass_rate) {
      misses.push_back(fmt::format("pass rate{} {:.3f} < {}", t.use_lower_bound ? " (95% lower bound)" : "", got, *t.pass_rate));
    }
  }
  auto at_most = [&](const std::optional<double>& limit, double got, const char* what) {
    if (limit && got > *limit) misses.push_back(fmt::format("{} {:.1f} > {}", what, got, *limit));
  };
  at_most(t.latency_p50_ms, s.latency_p50_ms, "latency p50 ms");
  at_most(t.latency_p95_ms, s.latency_p95_ms, "latency p95 ms");
  at_most(t.ttft_p95_ms, s.ttft_p95_ms, "time to first token p95 ms");
  if (s.run->candidate.local()) at_most(t.memory_mb, static_cast<double>(s.run->peak_rss_bytes) / kMiB, "peak RSS MB");
  if (s.run->candidate.local()) at_most(t.size_mb, static_cast<double>(s.run->size_bytes) / kMiB, "size MB");
  if (t.cost_usd && s.cost_usd > *t.cost_usd) misses.push_back(fmt::format("cost ${:.6f} > ${}", s.cost_usd, *t.cost_usd));
  if (t.json_valid && s.json_valid + 1e-12 < *t.json_valid) misses.push_back(fmt::format("JSON valid {:.3f} < {}", s.json_valid, *t.json_valid));
  for (const auto& [name, least] : t.scores) {
    for (const auto& [label, mean] : s.scores) {
      if (label == name && mean + 1e-12 < least) misses.push_back(fmt::format("{} {:.3f} < {}", name, mean, least));
    }
  }
  std::string why;
  for (const std::string& m : misses) why += (why.empty() ? "" : "; ") + m;
  return why;
}

std::string expected_text(const Suite& suite, const Case& c) {
  const std::vector<ScorerSpec>& scorers = suite.scorers_of(c);
  const std::string field = scorers.empty() ? "expected" : scorers.front().field;
  if (!c.fields.contains(field)) return "";
  const Json& e = c.fields[field];
  return e.is_string() ? e.get<std::string>() : e.dump();
}

}  // namespace

Report summarize(const Suite& suite, const std::vector<CandidateRun>& runs) {
  Report report;
  for (const CandidateRun& run : runs) {
    CandidateSummary s;
    s.run = &run;
    std::vector<double> latency, ttft, speed;
    std::map<std::string, std::pair<double, int64_t>> sums;
    std::vector<std::string> order;
    int64_t json_ok = 0;
    for (const CaseResult& r : run.cases) {
      ++s.total;
      if (r.passed) ++s.passed;
      s.cost_usd += r.cost_usd;
      if (parse_json_output(r.output)) ++json_ok;
      if (r.error.empty() && r.latency_ms > 0) {
        latency.push_back(r.latency_ms);
        ttft.push_back(r.ttft_ms);
        if (r.completion_tokens > 1 && r.latency_ms > r.ttft_ms) {
          speed.push_back(static_cast<double>(r.completion_tokens - 1) / ((r.latency_ms - r.ttft_ms) / 1000.0));
        }
      }
      const std::vector<ScorerSpec>& scorers = suite.scorers_of(suite.cases[r.case_index]);
      for (size_t i = 0; i < scorers.size() && i < r.scores.size(); ++i) {
        const std::string label = scorers[i].label();
        if (!sums.contains(label)) order.push_back(label);
        sums[label].first += r.scores[i].value;
        sums[label].second += 1;
      }
    }
    for (const std::string& label : order) s.scores.emplace_back(label, sums[label].first / static_cast<double>(sums[label].second));
    s.pass_rate = s.total > 0 ? static_cast<double>(s.passed) / static_cast<double>(s.total) : 0;
    const Interval ci = wilson(s.passed, s.total);
    s.ci_low = ci.low, s.ci_high = ci.high;
    s.json_valid = s.total > 0 ? static_cast<double>(json_ok) / static_cast<double>(s.total) : 0;
    s.latency_p50_ms = quantile(latency, 0.5);
    s.latency_p95_ms = quantile(latency, 0.95);
    s.ttft_p50_ms = quantile(ttft, 0.5);
    s.ttft_p95_ms = quantile(ttft, 0.95);
    s.tokens_per_s = quantile(speed, 0.5);
    if (!run.failure.empty()) {
      s.why = "failed: " + run.failure;
    } else if (static_cast<size_t>(s.total) < suite.cases.size() * static_cast<size_t>(suite.repeats)) {
      s.why = fmt::format("interrupted: {} of {} cases run", s.total, suite.cases.size() * static_cast<size_t>(suite.repeats));
      report.interrupted = true;
    } else {
      s.why = check(suite, s);
    }
    s.passes = s.why.empty();
    report.candidates.push_back(std::move(s));
  }
  // Paired with the first candidate (the base), case by case.
  if (!report.candidates.empty() && report.candidates.front().run->failure.empty()) {
    const CandidateRun& base = *report.candidates.front().run;
    std::map<std::pair<size_t, int>, bool> base_pass;
    for (const CaseResult& r : base.cases) base_pass[{r.case_index, r.repeat}] = r.passed;
    for (size_t i = 1; i < report.candidates.size(); ++i) {
      CandidateSummary& s = report.candidates[i];
      if (!s.run->failure.empty()) continue;
      int64_t b = 0, c = 0;
      for (const CaseResult& r : s.run->cases) {
        auto it = base_pass.find({r.case_index, r.repeat});
        if (it == base_pass.end()) continue;
        if (it->second && !r.passed) {
          ++b;
          const std::string& id = suite.cases[r.case_index].id;
          if (std::find(s.newly_failed_cases.begin(), s.newly_failed_cases.end(), id) == s.newly_failed_cases.end()) {
            s.newly_failed_cases.push_back(id);
          }
        }
        if (!it->second && r.passed) ++c;
      }
      s.newly_failed = b, s.newly_passed = c;
      s.mcnemar_p = mcnemar_p(b, c);
    }
  }
  // The verdict: the least by rank_by among those that pass (ties: the higher pass rate).
  const CandidateSummary* best = nullptr;
  for (const CandidateSummary& s : report.candidates) {
    if (!s.passes) continue;
    if (best == nullptr || rank_value(suite, s) < rank_value(suite, *best) ||
        (rank_value(suite, s) == rank_value(suite, *best) && s.pass_rate > best->pass_rate)) {
      best = &s;
    }
  }
  if (best != nullptr) {
    report.verdict.smallest_passing = best->run->candidate.id;
    const Thresholds& t = suite.thresholds;
    const bool none = !t.pass_rate && !t.latency_p50_ms && !t.latency_p95_ms && !t.ttft_p95_ms && !t.memory_mb && !t.size_mb &&
                      !t.cost_usd && !t.json_valid && t.scores.empty();
    report.verdict.why = fmt::format("{} passes with pass rate {:.3f} [{:.3f}, {:.3f}] at {} (rank_by {}){}", best->run->candidate.id,
                                     best->pass_rate, best->ci_low, best->ci_high, rank_text(suite, *best), rank_by_name(suite.rank_by),
                                     none ? "; the suite sets no thresholds, so every candidate that ran passes" : "");
  } else {
    const CandidateSummary* nearest = nullptr;
    for (const CandidateSummary& s : report.candidates) {
      if (s.run->failure.empty() && (nearest == nullptr || s.pass_rate > nearest->pass_rate)) nearest = &s;
    }
    report.verdict.why = nearest ? fmt::format("none passes; the nearest miss is {}: {}", nearest->run->candidate.id, nearest->why)
                                 : "none passes; no candidate ran";
  }
  return report;
}

Json report_json(const Suite& suite, const Report& report, const std::vector<CandidateRun>& runs) {
  Json j;
  j["suite"] = suite.name;
  j["candidates"] = Json::array();
  for (const CandidateSummary& s : report.candidates) {
    const Candidate& c = s.run->candidate;
    Json scores = Json::object();
    for (const auto& [label, mean] : s.scores) scores[label] = mean;
    Json cj{{"id", c.id},
            {"model", c.local() ? c.model : c.hosted->base_url + " " + c.hosted->model},
            {"quant", c.quant.empty() ? Json(nullptr) : Json(c.quant)},
            {"adapter", c.adapter.empty() ? Json(nullptr) : Json(c.adapter)},
            {"passed", s.passed}, {"total", s.total}, {"pass_rate", s.pass_rate}, {"ci_low", s.ci_low}, {"ci_high", s.ci_high},
            {"scores", scores}, {"json_valid", s.json_valid},
            {"latency_p50_ms", s.latency_p50_ms}, {"latency_p95_ms", s.latency_p95_ms},
            {"ttft_p50_ms", s.ttft_p50_ms}, {"ttft_p95_ms", s.ttft_p95_ms}, {"tokens_per_s", s.tokens_per_s},
            {"peak_rss_bytes", s.run->peak_rss_bytes}, {"size_bytes", s.run->size_bytes}, {"cost_usd", s.cost_usd},
            {"computed", s.run->computed}, {"passes", s.passes}, {"why", s.why}};
    if (!s.run->failure.empty()) cj["failure"] = s.run->failure;
    if (s.mcnemar_p) {
      cj["vs_first"] = Json{{"newly_failed", *s.newly_failed}, {"newly_passed", *s.newly_passed}, {"mcnemar_p", *s.mcnemar_p},
                            {"significant", *s.mcnemar_p < 0.05}, {"newly_failed_cases", s.newly_failed_cases}};
    }
    j["candidates"].push_back(std::move(cj));
  }
  j["cases"] = Json::array();
  for (const CandidateRun& run : runs) {
    for (const CaseResult& r : run.cases) {
      const Case& kase = suite.cases[r.case_index];
      const std::vector<ScorerSpec>& scorers = suite.scorers_of(kase);
      Json scores = Json::object();
      for (size_t i = 0; i < scorers.size() && i < r.scores.size(); ++i) scores[scorers[i].label()] = r.scores[i].value;
      Json conf{{"mean_logprob", r.confidence.mean_logprob ? Json(*r.confidence.mean_logprob) : Json(nullptr)},
                {"min_logprob", r.confidence.min_logprob ? Json(*r.confidence.min_logprob) : Json(nullptr)},
                {"margin", r.confidence.margin ? Json(*r.confidence.margin) : Json(nullptr)}};
      Json cj{{"candidate", run.candidate.id}, {"case", kase.id}, {"repeat", r.repeat}, {"output", r.output},
              {"scores", scores}, {"score", r.score}, {"passed", r.passed}, {"confidence", conf},
              {"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.completion_tokens},
              {"latency_ms", r.latency_ms}, {"cost_usd", r.cost_usd}, {"cached", r.cached}};
      if (!r.error.empty()) cj["error"] = r.error;
      std::string details;
      for (const Score& sc : r.scores) {
        if (!sc.passed && !sc.detail.empty()) details += (details.empty() ? "" : "; ") + sc.detail;
      }
      if (!details.empty()) cj["why"] = details;
      j["cases"].push_back(std::move(cj));
    }
  }
  j["verdict"] = Json{{"smallest_passing", report.verdict.smallest_passing.empty() ? Json(nullptr) : Json(report.verdict.smallest_passing)},
                      {"rank_by", rank_by_name(suite.rank_by)}, {"why", report.verdict.why}};
  return j;
}

std::string report_table(const Suite& suite, const Report& report) {
  struct Row {
    std::vector<std::string> cells;
  };
  std::vector<std::string> head = {"candidate", "passed", "pass rate [95% CI]", "p50 ms", "p95 ms", "tok/s", "RSS MB", "size MB", "cost $", "vs first", "passes"};
  std::vector<Row> rows;
  for (const CandidateSummary& s : report.candidates) {
    const CandidateRun& r = *s.run;
    Row row;
    row.cells.push_back(r.candidate.id);
    if (!r.failure.empty()) {
      row.cells.insert(row.cells.end(), {"-", "-", "-", "-", "-", "-", "-", "-", "-", "failed"});
    } else {
      row.cells.push_back(fmt::format("{}/{}", s.passed, s.total));
      row.cells.push_back(fmt::format("{:.2f} [{:.2f}, {:.2f}]", s.pass_rate, s.ci_low, s.ci_high));
      row.cells.push_back(fmt::format("{:.1f}", s.latency_p50_ms));
      row.cells.push_back(fmt::format("{:.1f}", s.latency_p95_ms));
      row.cells.push_back(fmt::format("{:.0f}", s.tokens_per_s));
      row.cells.push_back(r.peak_rss_bytes > 0 ? fmt::format("{:.0f}", static_cast<double>(r.peak_rss_bytes) / kMiB) : "-");
      row.cells.push_back(r.candidate.local() ? fmt::format("{:.2f}", static_cast<double>(r.size_bytes) / kMiB) : "-");
      row.cells.push_back(fmt::format("{:.3g}", s.cost_usd));
      row.cells.push_back(s.mcnemar_p ? fmt::format("-{} +{} p={:.2f}", *s.newly_failed, *s.newly_passed, *s.mcnemar_p) : "(first)");
      row.cells.push_back(s.passes ? "yes" : "no");
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
  for (const Row& r : rows) {
    for (size_t i = 0; i < r.cells.size(); ++i) width[i] = std::max(width[i], r.cells[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) out += "  ";
      out += i == 0 ? fmt::format("{:<{}}", cells[i], width[i]) : fmt::format("{:>{}}", cells[i], width[i]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = fmt::format("suite {}: {} cases{}\n", suite.name, suite.cases.size(),
                                suite.repeats > 1 ? fmt::format(" x {} repeats", suite.repeats) : "");
  out += line(head);
  for (const Row& r : rows) out += line(r.cells);
  for (const CandidateSummary& s : report.candidates) {
    if (!s.passes) out += fmt::format("  {}: {}\n", s.run->candidate.id, s.why);
  }
  out += fmt::format("verdict: {}\n", report.verdict.why);
  return out;
}

namespace {

// "What if": each candidate that records log-probabilities, as the first step of a cascade whose
// low-confidence answers (mean log-probability below a threshold) go to the most accurate
// candidate; the accuracy/cost curve across thresholds (owl route calibrate chooses from it).
std::string cascades_html(const Suite& suite, const Report& report) {
  const CandidateSummary* best = nullptr;
  for (const CandidateSummary& s : report.candidates) {
    if (s.run->failure.empty() && (best == nullptr || s.pass_rate > best->pass_rate ||
                                   (s.pass_rate == best->pass_rate && s.cost_usd < best->cost_usd))) {
      best = &s;
    }
  }
  if (best == nullptr) return "";
  std::map<std::pair<size_t, int>, const CaseResult*> big;
  for (const CaseResult& c : best->run->cases) big[{c.case_index, c.repeat}] = &c;
  std::string h;
  int drawn = 0;
  for (const CandidateSummary& s : report.candidates) {
    if (&s == best || !s.run->failure.empty() || drawn == 4) continue;
    std::vector<CascadeCase> cases;
    bool signals = false;
    for (const CaseResult& c : s.run->cases) {
      auto it = big.find({c.case_index, c.repeat});
      if (it == big.end()) continue;
      CascadeCase k{.id = suite.cases[c.case_index].id, .signal = c.confidence.mean_logprob, .forced = !c.error.empty(),
                    .step = {c.passed, c.cost_usd}, .rest = {it->second->passed, it->second->cost_usd}};
      signals = signals || k.signal.has_value();
      cases.push_back(std::move(k));
    }
    if (!signals || cases.empty()) continue;
    if (drawn++ == 0) {
      h += "<h2>Cascades</h2><p>Each candidate answering first, its answers with a mean token log-probability below a threshold "
           "escalated to " + html_escape(best->run->candidate.id) + " (the most accurate): accuracy against cost across thresholds. "
           "<code>owl route calibrate</code> picks the threshold for a route from this report.</p>";
    }
    const CascadeCurve curve = cascade_curve(cases);
    const CascadePoint* chosen = suite.thresholds.pass_rate ? cheapest_reaching(curve, *suite.thresholds.pass_rate) : nullptr;
    h += "<h3>" + html_escape(s.run->candidate.id) + " then " + html_escape(best->run->candidate.id) + "</h3>";
    h += cascade_svg(curve, chosen, suite.thresholds.pass_rate, fmt::format("cascade-{}", drawn), s.run->candidate.id, best->run->candidate.id);
    if (chosen != nullptr) {
      h += fmt::format("<p>Cheapest threshold reaching the pass rate {:.2f}: mean_logprob_below {:.4g}, accuracy {:.3f}, "
                       "{:.1f}% escalated, ${:.4g} per 1,000 requests.</p>",
                       *suite.thresholds.pass_rate, chosen->threshold, chosen->accuracy, 100 * chosen->escalation_rate, chosen->cost_per_1k);
    }
  }
  return h;
}

}  // namespace

std::string report_html(const Suite& suite, const Report& report, const std::vector<CandidateRun>& runs) {
  std::string h;
  h += "<!doctype html><html><head><meta charset=\"utf-8\"><title>owl eval: " + html_escape(suite.name) + "</title><style>"
       "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}"
       "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
       ".pass{color:#0a0}.fail{color:#c00}svg{background:#fafafa;border:1px solid #ddd;margin:8px 16px 8px 0}"
       "pre{white-space:pre-wrap;margin:0;max-width:40em}.case td{text-align:left;vertical-align:top}</style></head><body>";
  h += "<h1>owl eval: " + html_escape(suite.name) + "</h1>";
  h += "<p id=\"verdict\"><b>Verdict:</b> " + html_escape(report.verdict.why) + "</p>";
  h += "<table id=\"candidates\"><tr><th>candidate</th><th>passed</th><th>pass rate [95% CI]</th><th>p50 ms</th><th>p95 ms</th>"
       "<th>tok/s</th><th>RSS MB</th><th>size MB</th><th>cost $</th><th>passes</th></tr>";
  for (const CandidateSummary& s : report.candidates) {
    const CandidateRun& r = *s.run;
    h += "<tr><td>" + html_escape(r.candidate.id) + "</td>";
    if (!r.failure.empty()) {
      h += "<td colspan=\"9\" class=\"fail\">failed: " + html_escape(r.failure) + "</td></tr>";
      continue;
    }
    h += fmt::format("<td>{}/{}</td><td>{:.2f} [{:.2f}, {:.2f}]</td><td>{:.1f}</td><td>{:.1f}</td><td>{:.0f}</td><td>{:.0f}</td><td>{:.2f}</td><td>{:.6f}</td>",
                     s.passed, s.total, s.pass_rate, s.ci_low, s.ci_high, s.latency_p50_ms, s.latency_p95_ms, s.tokens_per_s,
                     static_cast<double>(r.peak_rss_bytes) / kMiB, static_cast<double>(r.size_bytes) / kMiB, s.cost_usd);
    h += s.passes ? "<td class=\"pass\">yes</td>" : "<td class=\"fail\" title=\"" + html_escape(s.why) + "\">no: " + html_escape(s.why) + "</td>";
    h += "</tr>";
  }
  h += "</table>";

  // Pass rate against size and against cost; the Pareto front (no other point is both smaller
  // and better) joined by a line.
  auto plot = [&](const char* id, const char* label, auto x_of, bool log_x) {
    std::vector<std::pair<double, const CandidateSummary*>> pts;
    for (const CandidateSummary& s : report.candidates) {
      if (s.run->failure.empty()) pts.emplace_back(x_of(s), &s);
    }
    const double W = 420, H = 280, L = 50, B = 40, T = 14, R = 16;
    std::string svg = fmt::format("<svg id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">", id, W, H, W, H);
    if (pts.empty()) return svg + "</svg>";
    auto tx = [&](double v) { return log_x ? std::log10(std::max(v, 1e-12)) : v; };
    double lo = tx(pts[0].first), hi = lo;
    for (const auto& p : pts) lo = std::min(lo, tx(p.first)), hi = std::max(hi, tx(p.first));
    if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
    const double pad = (hi - lo) * 0.08;
    lo -= pad, hi += pad;
    auto X = [&](double v) { return L + (tx(v) - lo) / (hi - lo) * (W - L - R); };
    auto Y = [&](double rate) { return T + (1 - rate) * (H - T - B); };
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>", L, H - B, W - R, H - B);
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>", L, T, L, H - B);
    for (double r : {0.0, 0.5, 1.0}) svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.1f}</text>", L - 4, Y(r) + 3, r);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>", (L + W - R) / 2, H - 8, label);
    svg += fmt::format("<text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">pass rate</text>", H / 2, H / 2);
    if (suite.thresholds.pass_rate) {
      svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>", L, Y(*suite.thresholds.pass_rate), W - R, Y(*suite.thresholds.pass_rate));
    }
    std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first || (a.first == b.first && a.second->pass_rate > b.second->pass_rate); });
    std::string front;
    double best = -1;
    std::vector<bool> on_front(pts.size(), false);
    for (size_t i = 0; i < pts.size(); ++i) {
      if (pts[i].second->pass_rate > best) {
        best = pts[i].second->pass_rate;
        on_front[i] = true;
        front += fmt::format("{:.1f},{:.1f} ", X(pts[i].first), Y(best));
      }
    }
    svg += "<polyline class=\"pareto\" fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\" points=\"" + front + "\"/>";
    for (size_t i = 0; i < pts.size(); ++i) {
      const CandidateSummary& s = *pts[i].second;
      svg += fmt::format("<circle class=\"point\" data-candidate=\"{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\" stroke=\"{}\"><title>{} pass rate {:.3f}</title></circle>",
                         html_escape(s.run->candidate.id), X(pts[i].first), Y(s.pass_rate), s.passes ? "#0a0" : "#c00",
                         on_front[i] ? "#36c" : "none", html_escape(s.run->candidate.id), s.pass_rate);
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{}</text>", X(pts[i].first) + 7, Y(s.pass_rate) - 6, html_escape(s.run->candidate.id));
    }
    return svg + "</svg>";
  };
  h += "<h2>Pass rate against size and cost</h2><p>Green passes the thresholds; ringed points form the Pareto front (nothing smaller does better).</p>";
  h += plot("plot-size", "size (MB, log scale)", [](const CandidateSummary& s) { return static_cast<double>(s.run->size_bytes) / kMiB; }, true);
  h += plot("plot-cost", "cost of the run (USD)", [](const CandidateSummary& s) { return s.cost_usd; }, false);

  // Latency distributions: each case's latency as a tick, p50 and p95 marked.
  h += "<h2>Latency</h2><svg id=\"latency\" width=\"720\" height=\"" + std::to_string(30 + 26 * report.candidates.size()) + "\">";
  double max_ms = 1;
  for (const CandidateRun& r : runs) {
    for (const CaseResult& c : r.cases) max_ms = std::max(max_ms, c.latency_ms);
  }
  for (size_t i = 0; i < report.candidates.size(); ++i) {
    const CandidateSummary& s = report.candidates[i];
    const double y = 20 + 26.0 * static_cast<double>(i);
    h += fmt::format("<text x=\"0\" y=\"{:.0f}\" font-size=\"11\">{}</text>", y + 4, html_escape(s.run->candidate.id));
    for (const CaseResult& c : s.run->cases) {
      const double x = 200 + c.latency_ms / max_ms * 500;
      h += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.0f}\" x2=\"{:.1f}\" y2=\"{:.0f}\" stroke=\"#999\"/>", x, y - 6, x, y + 6);
    }
    for (double q : {s.latency_p50_ms, s.latency_p95_ms}) {
      const double x = 200 + q / max_ms * 500;
      h += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.0f}\" x2=\"{:.1f}\" y2=\"{:.0f}\" stroke=\"#c60\" stroke-width=\"2\"/>", x, y - 9, x, y + 9);
    }
  }
  h += fmt::format("<text x=\"200\" y=\"{}\" font-size=\"10\">0 ms</text><text x=\"700\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.0f} ms</text></svg>",
                   26 * report.candidates.size() + 24, 26 * report.candidates.size() + 24, max_ms);

  h += cascades_html(suite, report);

  h += "<h2>Failing cases</h2>";
  for (const CandidateRun& r : runs) {
    size_t n_fail = 0;
    for (const CaseResult& c : r.cases) n_fail += c.passed ? 0 : 1;
    if (n_fail == 0) continue;
    h += "<h3>" + html_escape(r.candidate.id) + fmt::format(" ({} failing)</h3>", n_fail);
    h += "<table class=\"case\"><tr><th>case</th><th>output</th><th>expected</th><th>why</th></tr>";
    for (const CaseResult& c : r.cases) {
      if (c.passed) continue;
      const Case& kase = suite.cases[c.case_index];
      std::string why = c.error;
      for (const Score& sc : c.scores) {
        if (!sc.passed && !sc.detail.empty() && sc.detail != c.error) why += (why.empty() ? "" : "; ") + sc.detail;
      }
      h += "<tr><td>" + html_escape(kase.id) + (suite.repeats > 1 ? fmt::format(" #{}", c.repeat) : "") + "</td><td><pre>" +
           html_escape(c.output) + "</pre></td><td><pre>" + html_escape(expected_text(suite, kase)) + "</pre></td><td>" +
           html_escape(why) + "</td></tr>";
    }
    h += "</table>";
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace owl::eval
