// libFuzzer target for owl route calibrate's input: an eval report (JSON) against a fixed route
// of three steps. Any bytes must give a calibration or an error, never a crash; a calibration's
// curve must be ordered by escalations, with rates and accuracies in [0, 1].
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "eval/cascade.h"

namespace {

const owl::router::RouterConfig& config() {
  static const owl::router::RouterConfig c = *owl::router::parse_router_config(R"(
models:
  - {name: small, path: small.gguf}
  - {name: mid, path: mid.gguf}
  - {name: big, base_url: "http://127.0.0.1:1/v1", model: m}
routes:
  - name: auto
    cascade:
      - {model: small, escalate_if: {mean_logprob_below: -1, empty: true}}
      - {model: mid, escalate_if: {min_logprob_below: -2, json_invalid: true}}
      - big
)", "fuzz.yaml");
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto report = nlohmann::json::parse(data, data + size, nullptr, false);
  if (report.is_discarded()) return 0;
  for (size_t step : {0, 1}) {
    owl::eval::CalibrateOptions options{.route = "auto", .step = step, .target = 0.9};
    auto cal = owl::eval::calibrate_route(report, config(), options);
    if (!cal) continue;
    size_t before = 0;
    for (const auto& p : cal->curve.points) {
      if (p.escalated < before || !(p.accuracy >= 0 && p.accuracy <= 1) || !(p.escalation_rate >= 0 && p.escalation_rate <= 1)) {
        std::fprintf(stderr, "curve point out of order or range\n");
        std::abort();
      }
      before = p.escalated;
    }
    (void)owl::eval::cascade_svg(cal->curve, cal->chosen ? &cal->curve.points[*cal->chosen] : nullptr, 0.9, "c", "small", "big");
  }
  return 0;
}
