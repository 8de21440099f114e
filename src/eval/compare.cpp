// compare_models: both models run the same chunks of the text; per position, the KL
// divergence of the candidate's softmax from the base's, argmax agreement and each model's
// log-likelihood of the actual next token.
#include "eval/compare.h"

#include <algorithm>
#include <cmath>

#include "eval/bench.h"
#include "model/forward.h"
#include "tokenizer/tokenizer.h"

namespace owl::eval {

using core::make_error;

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double quantile_of(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

namespace {

// log softmax of one row, in double.
void log_softmax(const float* logits, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  double max = logits[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(logits[i] - max);
  const double log_z = max + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = logits[i] - log_z;
}

int64_t argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

struct Loaded {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<model::Context> ctx;
};

core::Result<Loaded> open_side(const std::string& path, const CompareOptions& o) {
  auto model = model::load_model(path);
  if (!model) return model.error();
  auto ctx = model::make_context(**model, {.n_ctx = o.n_ctx, .n_seq = 1, .n_batch = o.n_ctx, .n_threads = o.n_threads});
  if (!ctx) return ctx.error();
  return Loaded{std::move(*model), std::move(*ctx)};
}

core::Status measure_speed(const model::Model& m, const CompareOptions& o, ModelSide& side) {
  side.file_size = m.file.file_size();
  if (o.n_gen <= 0) return {};
  auto r = run_bench(m, {.n_prompt = 0, .n_gen = o.n_gen, .n_threads = o.n_threads > 0 ? o.n_threads : 2,
                                .repetitions = 2, .n_batch = 512});
  if (!r) return r.error();
  for (const BenchResult& b : *r) {
    if (b.n_gen > 0) side.gen_tokens_per_s = b.avg_ts;
  }
  return {};
}

}  // namespace

core::Result<CompareReport> compare_models(const CompareOptions& o) {
  if (o.n_ctx < 2) return make_error("compare: context {} is too small", o.n_ctx);
  auto base = open_side(o.base, o);
  if (!base) return base.error();
  auto cand = open_side(o.candidate, o);
  if (!cand) return cand.error();
  const int64_t n_vocab = base->model->config.n_vocab;
  if (cand->model->config.n_vocab != n_vocab) {
    return make_error("compare: {} has {} tokens in its vocabulary, {} has {}", o.base, n_vocab, o.candidate,
                      cand->model->config.n_vocab);
  }
  auto tok = tokenizer::Tokenizer::load(base->model->file);
  if (!tok) return tok.error();
  std::vector<tokenizer::TokenId> tokens = tok->tokenize(o.text, {.add_special = false});
  if (tokens.size() < 2) return make_error("compare: the text has {} tokens; at least 2 are needed", tokens.size());
  const int64_t n_ctx = std::min<int64_t>(o.n_ctx, static_cast<int64_t>(tokens.size()) + 1);
  const int64_t per_chunk = n_ctx - 1;  // BOS + per_chunk text tokens
  int64_t n_chunks = (static_cast<int64_t>(tokens.size()) + per_chunk - 1) / per_chunk;
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);

  std::vector<float> lb(static_cast<size_t>(n_ctx * n_vocab)), lc(lb.size());
  std::vector<double> kl, pb, pc;
  double nll_b = 0, nll_c = 0;
  int64_t agree = 0;
  model::Batch batch;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t first = c * per_chunk;
    const int64_t n_text = std::min<int64_t>(per_chunk, static_cast<int64_t>(tokens.size()) - first);
    batch.clear();
    const bool bos = tok->bos() != tokenizer::kNoToken;
    if (bos) batch.add(tok->bos(), 0, 0, true);
    for (int64_t i = 0; i < n_text; ++i) batch.add(tokens[first + i], static_cast<int32_t>(batch.size()), 0, true);
    OWL_TRY(model::forward(*base->model, batch, *base->ctx, lb.data()));
    OWL_TRY(model::forward(*cand->model, batch, *cand->ctx, lc.data()));
    // Row r predicts batch token r + 1.
    for (int64_t r = 0; r + 1 < batch.size(); ++r) {
      const float* rb = lb.data() + r * n_vocab;
      const float* rc = lc.data() + r * n_vocab;
      log_softmax(rb, n_vocab, pb);
      log_softmax(rc, n_vocab, pc);
      double d = 0;
      for (int64_t i = 0; i < n_vocab; ++i) d += std::exp(pb[i]) * (pb[i] - pc[i]);
      kl.push_back(std::max(0.0, d));
      agree += argmax(rb, n_vocab) == argmax(rc, n_vocab) ? 1 : 0;
      const int32_t next = batch.token[static_cast<size_t>(r + 1)];
      nll_b -= pb[next];
      nll_c -= pc[next];
    }
    if (o.on_progress) o.on_progress(c + 1, n_chunks);
  }
  CompareReport rep;
  rep.base.path = o.base;
  rep.candidate.path = o.candidate;
  rep.n_tokens = static_cast<int64_t>(kl.size());
  rep.kl_mean = mean_of(kl);
  rep.kl_p99 = quantile_of(kl, 0.99);
  rep.kl_max = kl.empty() ? 0 : *std::max_element(kl.begin(), kl.end());
  rep.top1_agreement = static_cast<double>(agree) / static_cast<double>(rep.n_tokens);
  rep.base.perplexity = std::exp(nll_b / static_cast<double>(rep.n_tokens));
  rep.candidate.perplexity = std::exp(nll_c / static_cast<double>(rep.n_tokens));
  rep.ppl_ratio = rep.candidate.perplexity / rep.base.perplexity;
  OWL_TRY(measure_speed(*base->model, o, rep.base));
  OWL_TRY(measure_speed(*cand->model, o, rep.candidate));
  return rep;
}

}  // namespace owl::eval
