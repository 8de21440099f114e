// Server metrics in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

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

// The engine's state at one moment, read when /metrics is scraped.
struct EngineGauges {
  int64_t queued = 0;           // requests waiting for a sequence slot
  int64_t running = 0;          // sequences being computed
  int64_t n_slots = 0;
  int64_t kv_tokens_active = 0; // positions held by running sequences
  int64_t kv_tokens_cached = 0; // positions held by all slots, idle ones' prefix cache included
  int64_t kv_capacity = 0;      // n_slots * n_ctx
  int64_t kv_bytes = 0;
};

// Threading: every method may be called from any thread; one mutex guards the state.
class Metrics {
 public:
  Metrics();
  void count_request(std::string_view endpoint, int status);
  void add_prompt_tokens(int64_t computed, int64_t cached);
  void add_generated_tokens(int64_t n);
  void observe_latency(double ttft_s, double tpot_s, double e2e_s, bool has_tokens);
  void count_step(int64_t n_tokens, double seconds);
  void set_model_load_seconds(double s);
  std::string render(const EngineGauges& gauges) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status) -> count
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  uint64_t steps_ = 0, step_tokens_ = 0;
  double step_seconds_ = 0;
  double model_load_s_ = 0;
  Histogram ttft_, tpot_, e2e_;
};

}  // namespace owl::serve
