// Server metrics in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/scheduler.h"

namespace owl::serve {

// A cumulative histogram with fixed upper bounds (seconds).
struct Histogram {
  explicit Histogram(std::vector<double> bounds) : bounds(std::move(bounds)), counts(this->bounds.size(), 0) {}
  void observe(double v);
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bucket, not cumulative
  uint64_t count = 0;
  double sum = 0;
};

// The engines report to it as their observer (engine/scheduler.h).
// Threading: every method may be called from any thread; one mutex guards the state.
class Metrics : public engine::Observer {
 public:
  Metrics();
  void count_request(std::string_view endpoint, int status);
  void set_model_load_seconds(double s);
  // A routed request ended: how it was decided (cascade, escalated, fallback, sensitive, failed,
  // blocked), what it cost and which detectors fired.
  void count_route(std::string_view route, std::string_view decision, std::string_view model, double cost_usd,
                   const std::vector<std::string>& detectors);
  std::string render(const engine::Gauges& gauges) const;

  void on_admitted(int64_t computed, int64_t cached) override;
  void on_step(int64_t n_tokens, double seconds) override;
  void on_tokens(int64_t n) override;
  void on_step_adapters(int n_sets) override;
  void on_finished(const engine::ChoiceStats& stats, engine::Clock::time_point arrival) override;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status) -> count
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  uint64_t steps_ = 0, step_tokens_ = 0, mixed_adapter_steps_ = 0;
  double step_seconds_ = 0;
  double model_load_s_ = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> route_decisions_;  // (route, decision)
  std::map<std::pair<std::string, std::string>, double> cost_usd_;           // (route, model)
  std::map<std::pair<std::string, std::string>, uint64_t> detections_;       // (route, detector)
  Histogram ttft_, tpot_, e2e_;
};

}  // namespace owl::serve
