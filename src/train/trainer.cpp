#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <span>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "model/forward.h"
#include "train/adamw.h"
#include "train/backward.h"

namespace owl::train {

using core::make_error;

float learning_rate(const TrainOptions& o, int64_t step, int64_t total) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * static_cast<float>(step + 1) / static_cast<float>(o.warmup);
  const int64_t span = std::max<int64_t>(1, total - o.warmup);
  const double progress = static_cast<double>(step - o.warmup) / static_cast<double>(span);
  switch (o.schedule) {
    case Schedule::kConstant: return o.lr;
    case Schedule::kLinear: return static_cast<float>(o.lr * (1.0 - progress));
    case Schedule::kCosine: return static_cast<float>(o.lr * 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  return o.lr;
}

namespace {

using Clock = std::chrono::steady_clock;

// The examples of the run in order: epoch e is a permutation drawn from (seed, e), so a step's
// examples follow from the seed and the step alone.
class Order {
 public:
  Order(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  int64_t at(int64_t position) {
    const int64_t epoch = position / n_;
    if (epoch != epoch_) {
      perm_.resize(static_cast<size_t>(n_));
      std::iota(perm_.begin(), perm_.end(), int64_t{0});
      std::mt19937_64 rng(seed_ ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(epoch + 1)));
      for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates with an explicit draw: the same on every library
        const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
        std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(j)]);
      }
      epoch_ = epoch;
    }
    return perm_[static_cast<size_t>(position % n_)];
  }

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

// One micro-batch: its examples as whole sequences side by side, logits on the rows that predict
// a target.
struct Packed {
  model::Batch batch;
  std::vector<int32_t> targets;  // the token each logits row predicts
  int64_t n_tokens = 0;
};

void pack(const Dataset& data, std::span<const int64_t> indices, const model::AdapterSet* set, Packed& p) {
  p.batch.clear();
  p.targets.clear();
  int32_t seq = 0;
  for (int64_t idx : indices) {
    const Example& ex = data.examples[static_cast<size_t>(idx)];
    for (size_t t = 0; t < ex.tokens.size(); ++t) {
      const bool predicts = t + 1 < ex.tokens.size() && ex.target[t + 1] != 0;
      p.batch.add(ex.tokens[t], static_cast<int32_t>(t), seq, predicts, set);
      if (predicts) p.targets.push_back(ex.tokens[t + 1]);
    }
    ++seq;
  }
  p.n_tokens = p.batch.size();
}

int64_t longest(const Dataset& data) {
  int64_t n = 1;
  for (const Example& ex : data.examples) n = std::max(n, static_cast<int64_t>(ex.tokens.size()));
  return n;
}

core::Result<std::unique_ptr<model::Context>> training_context(const model::Model& model, int64_t batch,
                                                               int64_t max_len, int n_threads) {
  return model::make_context(model, {.n_ctx = max_len, .n_seq = static_cast<int>(batch), .n_batch = batch * max_len,
                                     .n_threads = n_threads, .exact_attention = true});
}

int64_t longest(const Dataset& a, const Dataset& b) { return std::max(longest(a), b.examples.empty() ? 1 : longest(b)); }

// Forward over one packed micro-batch: returns the summed loss (each target weighted by `weight`)
// and, with `grads`, adds the gradients.
core::Result<double> run_micro_batch(const model::Model& model, model::Context& ctx, const Packed& p, float weight,
                                     const TrainableLora& lora, Backward& back,
                                     std::vector<std::vector<float>>* grads, std::vector<float>& hidden,
                                     model::Tape& tape) {
  const auto n_out = static_cast<int64_t>(p.targets.size());
  const auto size = static_cast<size_t>(n_out * model.config.n_embd);
  hidden.resize(size);
  ctx.tape = grads != nullptr ? &tape : nullptr;
  auto fwd = model::forward(model, p.batch, ctx, hidden.data(), model::Output::kHidden);
  ctx.tape = nullptr;
  OWL_TRY(fwd);
  // dL/dhidden replaces hidden in place.
  auto loss = back.output_loss(ctx, hidden.data(), p.targets, weight, grads != nullptr ? hidden.data() : nullptr);
  if (!loss) return loss.error();
  if (grads != nullptr) OWL_TRY(back.run(p.batch, tape, ctx, lora, hidden.data(), *grads));
  return *loss;
}

core::Result<double> evaluate_loss(const model::Model& model, model::Context& ctx, Backward& back,
                                   const TrainableLora& lora, const Dataset& data, int64_t batch) {
  model::AdapterSet set;
  set.adapters.emplace_back(lora.adapter, 1.0f);
  Packed p;
  std::vector<float> hidden;
  model::Tape tape;
  std::vector<int64_t> idx;
  double sum = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(data.examples.size()); i += batch) {
    idx.clear();
    for (int64_t j = i; j < std::min<int64_t>(i + batch, static_cast<int64_t>(data.examples.size())); ++j) idx.push_back(j);
    pack(data, idx, &set, p);
    auto loss = run_micro_batch(model, ctx, p, 1.0f, lora, back, nullptr, hidden, tape);
    if (!loss) return loss.error();
    sum += *loss;
  }
  return sum / static_cast<double>(data.n_targets);
}

// ---- checkpoints: the adapter, AdamW's state, the best adapter so far and where the run is ----

constexpr const char* kCheckpointType = "owl.lora-checkpoint";

struct State {
  int64_t step = 0;
  double best_val = INFINITY;
  int64_t best_step = 0;
  int64_t evals_since_best = 0;
  std::vector<std::vector<float>> best;  // the adapter at best_val (empty without validation)
};

std::string fingerprint(const TrainOptions& o, const TrainableLora& lora, const Dataset& train, const Dataset& val) {
  return fmt::format("lr={} batch={} grad_accum={} schedule={} warmup={} weight_decay={} clip={} dropout={} seed={} "
                     "epochs={} steps={} rank={} alpha={} params={} train={}/{} val={}/{}",
                     o.lr, o.batch, o.grad_accum, static_cast<int>(o.schedule), o.warmup, o.weight_decay, o.clip,
                     o.dropout,
                     o.seed, o.epochs, o.steps, lora.rank, lora.alpha, lora.n_params(), train.examples.size(),
                     train.n_tokens, val.examples.size(), val.n_tokens);
}

core::Status write_checkpoint(const std::string& path, const TrainableLora& lora, const AdamW& opt, const State& st,
                              const std::string& print) {
  gguf::GgufWriter w;
  w.set_file_mode(0600);  // learned from the user's data
  w.set("general.type", gguf::Value::string(kCheckpointType));
  w.set("owl.train.fingerprint", gguf::Value::string(print));
  w.set("owl.train.step", gguf::Value::i64(st.step));
  w.set("owl.train.adam_step", gguf::Value::i64(opt.step));
  w.set("owl.train.best_val_loss", gguf::Value::f64(st.best_val));
  w.set("owl.train.best_step", gguf::Value::i64(st.best_step));
  w.set("owl.train.evals_since_best", gguf::Value::i64(st.evals_since_best));
  auto add = [&](const std::string& name, const std::vector<float>& v) {
    const int64_t shape[1] = {static_cast<int64_t>(v.size())};
    return w.add_tensor(name, gguf::TensorType::F32, shape,
                        std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
  };
  for (size_t k = 0; k < lora.adapter->storage.size(); ++k) {
    OWL_TRY(add(fmt::format("param.{}", k), lora.adapter->storage[k]));
    OWL_TRY(add(fmt::format("adam_m.{}", k), opt.m[k]));
    OWL_TRY(add(fmt::format("adam_v.{}", k), opt.v[k]));
    if (!st.best.empty()) OWL_TRY(add(fmt::format("best.{}", k), st.best[k]));
  }
  return w.write(path);
}

core::Status read_checkpoint(const std::string& path, TrainableLora& lora, AdamW& opt, State& st,
                             const std::string& print) {
  auto f = gguf::GgufFile::open(path);
  if (!f) return f.error();
  auto type = f->get_string_or("general.type", "");
  if (!type) return type.error();
  if (*type != kCheckpointType) return make_error("--resume {}: not an owl training checkpoint (general.type '{}')", path, *type);
  auto saved = f->get_string("owl.train.fingerprint");
  if (!saved) return saved.error();
  if (*saved != print) {
    return make_error("--resume {}: the checkpoint was made with other options or data:\n  checkpoint: {}\n  now:        {}",
                      path, *saved, print);
  }
  auto step = f->get_int("owl.train.step");
  auto adam_step = f->get_int("owl.train.adam_step");
  auto best_val = f->get_float("owl.train.best_val_loss");
  auto best_step = f->get_int("owl.train.best_step");
  auto since = f->get_int("owl.train.evals_since_best");
  for (const auto* r : {&step, &adam_step, &best_step, &since}) {
    if (!*r) return r->error();
  }
  if (!best_val) return best_val.error();
  st.step = *step;
  opt.step = *adam_step;
  st.best_val = *best_val;
  st.best_step = *best_step;
  st.evals_since_best = *since;
  const size_t n = lora.adapter->storage.size();
  opt.m.assign(n, {});
  opt.v.assign(n, {});
  st.best.clear();
  auto read = [&](const std::string& name, size_t size, std::vector<float>& out) -> core::Status {
    const gguf::TensorInfo* t = f->find_tensor(name);
    if (t == nullptr || t->type != gguf::TensorType::F32 || t->n_elements() != static_cast<int64_t>(size)) {
      return make_error("--resume {}: tensor {} is missing or not {} f32 values", path, name, size);
    }
    out.resize(size);
    std::copy_n(reinterpret_cast<const float*>(t->data), size, out.data());
    return {};
  };
  for (size_t k = 0; k < n; ++k) {
    std::vector<float>& p = lora.adapter->storage[k];
    std::vector<float> values;
    OWL_TRY(read(fmt::format("param.{}", k), p.size(), values));
    std::copy(values.begin(), values.end(), p.begin());  // in place: the adapter's pairs point here
    OWL_TRY(read(fmt::format("adam_m.{}", k), p.size(), opt.m[k]));
    OWL_TRY(read(fmt::format("adam_v.{}", k), p.size(), opt.v[k]));
    if (f->find_tensor(fmt::format("best.{}", k)) != nullptr) {
      st.best.resize(n);
      OWL_TRY(read(fmt::format("best.{}", k), p.size(), st.best[k]));
    }
  }
  return {};
}

}  // namespace

core::Result<double> evaluate_loss(const model::Model& model, const TrainableLora& lora, const Dataset& data,
                                   int64_t batch, int n_threads) {
  auto ctx = training_context(model, batch, longest(data), n_threads);
  if (!ctx) return ctx.error();
  Backward back(model, (*ctx)->options.n_batch);
  return evaluate_loss(model, **ctx, back, lora, data, batch);
}

ActivationPlan plan_activations(const model::Model& model, const TrainOptions& o, const Dataset& train,
                                const Dataset& val) {
  const model::ModelConfig& c = model.config;
  const int64_t tokens = std::max<int64_t>(1, o.batch) * longest(train, val);
  ActivationPlan plan;
  plan.full_bytes = model::layer_tape_bytes_per_token(c) * c.n_layer * tokens;
  plan.inputs_bytes = (c.n_layer * c.n_embd * static_cast<int64_t>(sizeof(float))) * tokens +
                      model::layer_tape_bytes_per_token(c) * tokens;
  plan.recompute = o.recompute == Recompute::kOn ||
                   (o.recompute == Recompute::kAuto && plan.full_bytes > kRecomputeAboveBytes);
  return plan;
}

core::Result<TrainResult> train(const model::Model& model, TrainableLora& lora, const Dataset& train_set,
                                const Dataset& val, const TrainOptions& o, const std::string& resume,
                                const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop) {
  if (o.batch < 1 || o.grad_accum < 1) return make_error("--batch and --grad-accum must be at least 1");
  if (!(o.dropout >= 0.0f && o.dropout < 1.0f)) return make_error("--dropout {} is outside [0, 1)", o.dropout);
  const auto n_train = static_cast<int64_t>(train_set.examples.size());
  const int64_t per_step = o.batch * o.grad_accum;
  const int64_t total = o.steps > 0 ? o.steps : std::max<int64_t>(1, (o.epochs * n_train + per_step - 1) / per_step);
  auto ctx = training_context(model, o.batch, longest(train_set, val), o.n_threads);
  if (!ctx) return ctx.error();
  Backward back(model, (*ctx)->options.n_batch);
  model::Tape tape;
  tape.inputs_only = plan_activations(model, o, train_set, val).recompute;
  model::AdapterSet set;
  set.adapters.emplace_back(lora.adapter, 1.0f);
  model::LoraDropout dropout{.p = o.dropout};
  if (o.dropout > 0.0f) set.dropout = &dropout;

  AdamW opt;
  opt.options.weight_decay = o.weight_decay;
  opt.m = lora.zeros_like();
  opt.v = lora.zeros_like();
  State st;
  const std::string print = fingerprint(o, lora, train_set, val);
  if (!resume.empty()) OWL_TRY(read_checkpoint(resume, lora, opt, st, print));

  TrainResult result;
  Order order(n_train, o.seed);
  Packed p;
  std::vector<float> hidden;
  auto grads = lora.zeros_like();
  const auto start = Clock::now();
  int64_t tokens_run = 0;
  std::string last_checkpoint;

  auto validate = [&](int64_t step, StepReport& report) -> core::Status {
    if (val.examples.empty()) return {};
    auto v = evaluate_loss(model, **ctx, back, lora, val, o.batch);
    if (!v) return v.error();
    report.val_loss = *v;
    if (*v < st.best_val) {
      st.best_val = *v;
      st.best_step = step;
      st.evals_since_best = 0;
      st.best = lora.adapter->storage;
    } else {
      ++st.evals_since_best;
    }
    return {};
  };

  for (; st.step < total; ++st.step) {
    if (stop != nullptr && stop->load()) {
      result.interrupted = true;
      break;
    }
    const auto t0 = Clock::now();
    // The step's examples and the number of tokens it predicts (the loss is their mean).
    int64_t n_targets = 0;
    std::vector<std::vector<int64_t>> micro(static_cast<size_t>(o.grad_accum));
    for (int64_t m = 0; m < o.grad_accum; ++m) {
      for (int64_t b = 0; b < o.batch; ++b) {
        const int64_t i = order.at((st.step * o.grad_accum + m) * o.batch + b);
        micro[static_cast<size_t>(m)].push_back(i);
        n_targets += train_set.examples[static_cast<size_t>(i)].n_targets();
      }
    }
    for (auto& g : grads) std::fill(g.begin(), g.end(), 0.0f);
    double loss = 0;
    int64_t step_tokens = 0;
    const float weight = 1.0f / static_cast<float>(n_targets);
    for (size_t m = 0; m < micro.size(); ++m) {
      // Each micro-batch's dropout mask follows from the seed, the step and its place alone.
      dropout.seed = model::LoraDropout::mix(o.seed ^ model::LoraDropout::mix(
                                                           static_cast<uint64_t>(st.step * o.grad_accum) + m + 1));
      pack(train_set, micro[m], &set, p);
      auto l = run_micro_batch(model, **ctx, p, weight, lora, back, &grads, hidden, tape);
      if (!l) return l.error();
      loss += *l;
      step_tokens += p.n_tokens;
    }
    loss /= static_cast<double>(n_targets);
    const double norm = clip_grad_norm(grads, o.clip);
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      return make_error("step {}: the loss is {} (gradient norm {}); training stopped before updating the adapter{}",
                        st.step + 1, loss, norm,
                        last_checkpoint.empty() ? std::string()
                                                : fmt::format("; the last good checkpoint is {}", last_checkpoint));
    }
    const float lr = learning_rate(o, st.step, total);
    opt.update(lora.adapter->storage, grads, lr);
    tokens_run += step_tokens;

    StepReport report;
    report.step = st.step + 1;
    report.total = total;
    report.loss = loss;
    report.grad_norm = norm;
    report.lr = lr;
    report.tokens = step_tokens;
    const bool last = st.step + 1 == total;
    if ((o.eval_every > 0 && report.step % o.eval_every == 0) || last) OWL_TRY(validate(report.step, report));
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    report.elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    result.final_loss = loss;
    if (on_step) on_step(report);
    if (o.early_stop > 0 && st.evals_since_best >= o.early_stop) {
      result.stopped_early = true;
      ++st.step;
      break;
    }
    if (o.checkpoint_every > 0 && !o.checkpoint.empty() && (report.step % o.checkpoint_every == 0 || last)) {
      State saved = st;
      saved.step = st.step + 1;
      OWL_TRY(write_checkpoint(o.checkpoint, lora, opt, saved, print));
      last_checkpoint = o.checkpoint;
    }
  }
  if (result.interrupted && !o.checkpoint.empty()) OWL_TRY(write_checkpoint(o.checkpoint, lora, opt, st, print));
  result.steps = st.step;
  if (!st.best.empty()) {
    for (size_t k = 0; k < st.best.size(); ++k) {
      std::copy(st.best[k].begin(), st.best[k].end(), lora.adapter->storage[k].begin());
    }
    result.best_val_loss = st.best_val;
    result.best_step = st.best_step;
  } else {
    result.best_step = st.step;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  result.tokens_per_second = secs > 0 ? static_cast<double>(tokens_run) / secs : 0;
  return result;
}

}  // namespace owl::train
