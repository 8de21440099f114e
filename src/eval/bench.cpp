#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>

#include "kernels/kernels.h"
#include "model/forward.h"

namespace owl::eval {

using model::Batch;
using model::Context;
using model::LayerWeights;
using model::Model;
using model::ModelWeights;
using model::Weight;

namespace {

using Clock = std::chrono::steady_clock;

void summarize(BenchResult& r, int64_t n_tokens) {
  std::vector<double> ts;
  for (double ns : r.samples_ns) ts.push_back(1e9 * static_cast<double>(n_tokens) / ns);
  auto mean_sd = [](const std::vector<double>& v, double& mean, double& sd) {
    mean = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    sd = 0;
    for (double x : v) sd += (x - mean) * (x - mean);
    sd = v.size() > 1 ? std::sqrt(sd / static_cast<double>(v.size() - 1)) : 0.0;
  };
  mean_sd(r.samples_ns, r.avg_ns, r.stddev_ns);
  mean_sd(ts, r.avg_ts, r.stddev_ts);
}

// One timed run; the cache starts empty each time.
core::Result<double> time_run(const Model& model, Context& ctx, const std::vector<int32_t>& tokens, bool prompt,
                              const model::AdapterSet* adapters, std::vector<float>& logits) {
  ctx.kv.clear();
  Batch batch;
  const auto start = Clock::now();
  if (prompt) {
    for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], static_cast<int32_t>(i), 0, i + 1 == tokens.size(), adapters);
    OWL_TRY(forward(model, batch, ctx, logits.data()));
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      batch.clear();
      batch.add(tokens[i], static_cast<int32_t>(i), 0, true, adapters);
      OWL_TRY(forward(model, batch, ctx, logits.data()));
    }
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double bytes(const Weight& w) {
  return w.present() ? static_cast<double>(gguf::row_bytes(w.type, w.n_in) * w.n_out) : 0.0;
}

}  // namespace

double weight_bytes_per_token(const Model& model, const model::AdapterSet* adapters) {
  const ModelWeights& w = model.weights;
  double total = bytes(w.output_norm) + bytes(w.output) + bytes(w.rope_freqs);
  total += static_cast<double>(gguf::row_bytes(w.token_embd.type, w.token_embd.n_in));
  for (const LayerWeights& l : w.layers) {
    for (const Weight* m : {&l.attn_norm, &l.attn_q, &l.attn_k, &l.attn_v, &l.attn_qkv, &l.attn_q_bias, &l.attn_k_bias,
                            &l.attn_v_bias, &l.attn_q_norm, &l.attn_k_norm, &l.attn_output, &l.post_attention_norm,
                            &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.post_ffw_norm}) {
      total += bytes(*m);
    }
  }
  if (adapters != nullptr) {
    for (const auto& [adapter, scale] : adapters->adapters) {
      for (const model::LoraPair& p : adapter->pairs) {
        if (p.present()) total += static_cast<double>(p.rank * (p.n_in + p.n_out) * int64_t{sizeof(float)});
      }
    }
  }
  return total;
}

std::vector<double> BenchResult::bandwidth_shares() const {
  std::vector<double> shares;
  for (size_t i = 0; i < read_gbs.size() && i < samples_ns.size(); ++i) {
    const double gbs = weight_bytes_per_token * static_cast<double>(n_gen) / samples_ns[i];  // bytes per ns = GB/s
    shares.push_back(gbs / read_gbs[i]);
  }
  return shares;
}

double BenchResult::median_share() const { return median(bandwidth_shares()); }

double BenchResult::median_read_gbs() const { return median(read_gbs); }

core::Status check_bench_options(const Model& model, const BenchOptions& o) {
  if (o.repetitions < 1) return core::make_error("bench: repetitions {} must be at least 1", o.repetitions);
  if (o.n_prompt < 0 || o.n_gen < 0 || o.n_batch < 1) {
    return core::make_error("bench: n_prompt {}, n_gen {} must be >= 0 and n_batch {} >= 1", o.n_prompt, o.n_gen, o.n_batch);
  }
  const int64_t train = model.config.n_ctx_train;
  for (const auto& [name, n] : {std::pair{"n_prompt", o.n_prompt}, std::pair{"n_gen", o.n_gen}}) {
    if (train > 0 && n > train) {
      return core::make_error("bench: {}: {} {} is more than the model's context of {} tokens", model.file.path(), name, n,
                              train);
    }
  }
  return {};
}

core::Result<std::vector<BenchResult>> run_bench(const Model& model, const BenchOptions& o) {
  OWL_TRY(check_bench_options(model, o));
  const int64_t n_ctx = std::max<int64_t>(std::max(o.n_prompt, o.n_gen), 1);
  auto ctx = make_context(model, {.n_ctx = n_ctx, .n_seq = 1, .n_batch = std::min(o.n_batch, n_ctx), .n_threads = o.n_threads,
                                  .batch_invariant = o.batch_invariant});
  if (!ctx) return ctx.error();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(model.config.n_vocab - 1));
  std::vector<float> logits(static_cast<size_t>(model.config.n_vocab));
  std::vector<BenchResult> results;
  for (const bool prompt : {true, false}) {
    const int64_t n = prompt ? o.n_prompt : o.n_gen;
    if (n <= 0) continue;
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int32_t& t : tokens) t = pick(rng);
    BenchResult r;
    r.test = (prompt ? "pp" : "tg") + std::to_string(n);
    r.n_prompt = prompt ? n : 0;
    r.n_gen = prompt ? 0 : n;
    auto warmup = time_run(model, **ctx, std::vector<int32_t>(tokens.begin(), tokens.begin() + std::min<int64_t>(n, 16)),
                           prompt, o.adapters, logits);
    if (!warmup) return warmup.error();
    const bool bandwidth = o.bandwidth && !prompt;
    std::unique_ptr<kernels::ReadBandwidth> meter;
    if (bandwidth) {
      meter = std::make_unique<kernels::ReadBandwidth>();
      r.weight_bytes_per_token = weight_bytes_per_token(model, o.adapters);
    }
    for (int rep = 0; rep < o.repetitions; ++rep) {
      if (o.on_progress) o.on_progress(r.test, rep + 1, o.repetitions);
      if (bandwidth) r.read_gbs.push_back(meter->measure((*ctx)->pool, 2));
      (*ctx)->profile = o.profile ? &r.profile : nullptr;
      auto ns = time_run(model, **ctx, tokens, prompt, o.adapters, logits);
      (*ctx)->profile = nullptr;
      if (!ns) return ns.error();
      r.samples_ns.push_back(*ns);
    }
    summarize(r, n);
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace owl::eval
