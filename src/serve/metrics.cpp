#include "serve/metrics.h"

#include <fmt/format.h>

namespace owl::serve {
namespace {

void render_histogram(std::string& out, std::string_view name, std::string_view help, const Histogram& h) {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, h.count, name, h.sum, name, h.count);
}

void render_scalar(std::string& out, std::string_view type, std::string_view name, std::string_view help,
                   double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

}  // namespace

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  if (i < bounds.size()) ++counts[i];
  ++count;
  sum += v;
}

Metrics::Metrics()
    : ttft_({0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      e2e_({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::count_request(std::string_view endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{std::string(endpoint), status}];
}

void Metrics::count_route(std::string_view route, std::string_view decision, std::string_view model, double cost_usd,
                          const std::vector<std::string>& detectors) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++route_decisions_[{std::string(route), std::string(decision)}];
  if (!model.empty()) cost_usd_[{std::string(route), std::string(model)}] += cost_usd;
  for (const std::string& d : detectors) ++detections_[{std::string(route), d}];
}

void Metrics::on_admitted(int64_t computed, int64_t cached) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += static_cast<uint64_t>(computed + cached);
  cached_tokens_ += static_cast<uint64_t>(cached);
}

void Metrics::on_tokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  generated_tokens_ += static_cast<uint64_t>(n);
}

void Metrics::on_finished(const engine::ChoiceStats& st, engine::Clock::time_point arrival) {
  const auto seconds = [](engine::Clock::time_point a, engine::Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  const double tpot = st.n_generated > 1 ? seconds(st.t_first_token, st.t_end) / static_cast<double>(st.n_generated - 1) : 0.0;
  std::lock_guard<std::mutex> lock(mutex_);
  if (st.n_generated > 0) ttft_.observe(seconds(arrival, st.t_first_token));
  if (tpot > 0) tpot_.observe(tpot);
  e2e_.observe(seconds(arrival, st.t_end));
}

void Metrics::on_step(int64_t n_tokens, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++steps_;
  step_tokens_ += static_cast<uint64_t>(n_tokens);
  step_seconds_ += seconds;
}

void Metrics::on_step_adapters(int n_sets) {
  if (n_sets < 2) return;
  std::lock_guard<std::mutex> lock(mutex_);
  ++mixed_adapter_steps_;
}

void Metrics::set_model_load_seconds(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  model_load_s_ = s;
}

std::string Metrics::render(const engine::Gauges& g) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out += "# HELP owl_requests_total HTTP requests by endpoint and status code.\n# TYPE owl_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("owl_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  }
  if (!route_decisions_.empty()) {
    out += "# HELP owl_route_decisions_total Routed requests by route and decision.\n# TYPE owl_route_decisions_total counter\n";
    for (const auto& [key, n] : route_decisions_) {
      out += fmt::format("owl_route_decisions_total{{route=\"{}\",decision=\"{}\"}} {}\n", key.first, key.second, n);
    }
    out += "# HELP owl_cost_usd_total What routed answers cost, by route and answering model.\n# TYPE owl_cost_usd_total counter\n";
    for (const auto& [key, usd] : cost_usd_) {
      out += fmt::format("owl_cost_usd_total{{route=\"{}\",model=\"{}\"}} {}\n", key.first, key.second, usd);
    }
    out += "# HELP owl_sensitive_detections_total Routed requests in which a detector fired.\n"
           "# TYPE owl_sensitive_detections_total counter\n";
    for (const auto& [key, n] : detections_) {
      out += fmt::format("owl_sensitive_detections_total{{route=\"{}\",detector=\"{}\"}} {}\n", key.first, key.second, n);
    }
  }
  render_scalar(out, "counter", "owl_prompt_tokens_total", "Prompt tokens of admitted requests.",
                static_cast<double>(prompt_tokens_));
  render_scalar(out, "counter", "owl_prompt_tokens_cached_total", "Prompt tokens reused from the KV cache.",
                static_cast<double>(cached_tokens_));
  render_scalar(out, "counter", "owl_generated_tokens_total", "Tokens generated.", static_cast<double>(generated_tokens_));
  render_scalar(out, "counter", "owl_engine_steps_total", "Forward passes of the scheduler.", static_cast<double>(steps_));
  render_scalar(out, "counter", "owl_engine_step_tokens_total", "Tokens computed by the forward passes.",
                static_cast<double>(step_tokens_));
  render_scalar(out, "counter", "owl_engine_step_seconds_total", "Time spent in forward passes.", step_seconds_);
  render_scalar(out, "counter", "owl_engine_mixed_adapter_steps_total",
                "Forward passes that computed sequences of different LoRA adapters (or adapters and the base model) together.",
                static_cast<double>(mixed_adapter_steps_));
  render_histogram(out, "owl_time_to_first_token_seconds", "From arrival to the first generated token.", ttft_);
  render_histogram(out, "owl_time_per_output_token_seconds", "Mean time between generated tokens of a request.", tpot_);
  render_histogram(out, "owl_request_duration_seconds", "From arrival to the last token.", e2e_);
  render_scalar(out, "gauge", "owl_queue_length", "Requests waiting for a sequence slot.", static_cast<double>(g.queued));
  render_scalar(out, "gauge", "owl_running_sequences", "Sequences being computed.", static_cast<double>(g.running));
  render_scalar(out, "gauge", "owl_sequence_slots", "Sequence slots (--parallel).", static_cast<double>(g.n_slots));
  render_scalar(out, "gauge", "owl_kv_cache_usage_ratio", "KV cache positions held by running sequences / capacity.",
                g.kv_capacity > 0 ? static_cast<double>(g.kv_tokens_active) / static_cast<double>(g.kv_capacity) : 0.0);
  render_scalar(out, "gauge", "owl_kv_cache_tokens", "KV cache positions held, idle slots' prefix cache included.",
                static_cast<double>(g.kv_tokens_cached));
  render_scalar(out, "gauge", "owl_kv_cache_capacity_tokens", "KV cache positions in all slots.",
                static_cast<double>(g.kv_capacity));
  render_scalar(out, "gauge", "owl_kv_cache_bytes", "Memory of the KV cache.", static_cast<double>(g.kv_bytes));
  render_scalar(out, "gauge", "owl_model_load_seconds", "Time the model took to load.", model_load_s_);
  return out;
}

}  // namespace owl::serve
