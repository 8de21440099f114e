// merge_lora: each weight with adapter pairs is read row by row as f32, gets Σ factor · B A added
// in double and is rounded once to its output type; every other tensor is copied or converted
// as owl quantize converts it.
#include "quantize/merge.h"

#include <chrono>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "gguf/keys.h"
#include "quant/traits.h"

namespace owl::quantize {

namespace keys = gguf::keys;

using core::make_error;
using gguf::TensorType;

namespace {

// One adapter's pair on a weight, with its factor scale · alpha / rank.
struct Term {
  const model::LoraPair* pair = nullptr;
  double factor = 0;
};

// The terms of every weight an adapter touches, by tensor name ("blk.3.attn_q.weight"), each
// checked against the tensor of the base's file. A factor of 0 adds nothing and is left out.
core::Result<std::map<std::string, std::vector<Term>>> collect_terms(const gguf::GgufFile& file,
                                                                     const model::AdapterSet& set) {
  constexpr size_t kKinds = static_cast<size_t>(model::LinearKind::kCount);
  std::map<std::string, std::vector<Term>> terms;
  for (const auto& [adapter, scale] : set.adapters) {
    const double factor = static_cast<double>(scale) * static_cast<double>(adapter->alpha_scale);
    for (size_t i = 0; i < adapter->pairs.size(); ++i) {
      const model::LoraPair& p = adapter->pairs[i];
      if (!p.present() || factor == 0) continue;
      const std::string name = fmt::format("blk.{}.{}.weight", i / kKinds,
                                           model::linear_kind_name(static_cast<model::LinearKind>(i % kKinds)));
      const gguf::TensorInfo* t = file.find_tensor(name);
      if (t == nullptr) return make_error("merge: adapter {}: the model has no tensor {}", adapter->name, name);
      if (t->n_dims != 2 || t->ne[0] != p.n_in || t->ne[1] != p.n_out) {
        return make_error("merge: adapter {}: {} is {} x {} but its pair is for {} -> {}", adapter->name, name,
                          t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, p.n_in, p.n_out);
      }
      terms[name].push_back({&p, factor});
    }
  }
  return terms;
}

// Every tensor's output type: the preset's mix, or the type it has.
core::Result<std::vector<TensorPlan>> plan_merge(const gguf::GgufFile& file, const MergeOptions& o) {
  if (o.preset) return plan_quantization(file, MixOptions{.preset = *o.preset});
  std::vector<TensorPlan> plans;
  for (const gguf::TensorInfo& t : file.tensors()) plans.push_back({.tensor = &t, .target = t.type});
  return plans;
}

// A merged tensor is read as floats and written in its target type: both must be possible.
core::Status check_convertible(const gguf::TensorInfo& t, TensorType target) {
  const quant::FormatTraits* in = quant::find_format_traits(t.type);
  const quant::FormatTraits* out = quant::find_format_traits(target);
  if (in == nullptr || in->dequantize == nullptr || out == nullptr || out->quantize == nullptr) {
    return make_error("merge: tensor {}: cannot convert type {} to {}", t.name, gguf::type_info(t.type).name,
                      gguf::type_info(target).name);
  }
  return {};
}

// W'[j] = W[j] + Σ factor · B[j] A, summed in double and rounded once; W [n_out][n_in] row j.
void add_terms(const std::vector<Term>& terms, int64_t n_in, int64_t j, float* w) {
  std::vector<double> acc(w, w + n_in);
  for (const Term& term : terms) {
    const model::LoraPair& p = *term.pair;
    const float* b = p.b + j * p.rank;  // B [n_out][rank]
    for (int64_t k = 0; k < p.rank; ++k) {
      const double c = term.factor * static_cast<double>(b[k]);
      const float* a = p.a + k * p.n_in;  // A [rank][n_in]
      for (int64_t i = 0; i < n_in; ++i) acc[static_cast<size_t>(i)] += c * static_cast<double>(a[i]);
    }
  }
  for (int64_t i = 0; i < n_in; ++i) w[i] = static_cast<float>(acc[static_cast<size_t>(i)]);
}

void copy_metadata(const gguf::GgufFile& in, const MergeOptions& o, gguf::GgufWriter& out) {
  for (const gguf::MetadataEntry& e : in.metadata()) {
    const bool replaced = e.key == keys::kGeneralQuantizationVersion || e.key == keys::kGeneralFileType;
    if (!o.preset || !replaced) out.set(e.key, e.value);
  }
  if (o.preset) {
    out.set(keys::kGeneralQuantizationVersion, gguf::Value::u32(2));
    out.set(keys::kGeneralFileType, gguf::Value::u32(static_cast<uint32_t>(o.preset->file_type)));
  }
}

}  // namespace

core::Result<MergeSummary> merge_lora(const MergeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.base == nullptr || o.adapters == nullptr) return make_error("merge: no base model or no adapters");
  const gguf::GgufFile& file = o.base->file;
  auto terms = collect_terms(file, *o.adapters);
  if (!terms) return terms.error();
  auto plans = plan_merge(file, o);
  if (!plans) return plans.error();
  for (const TensorPlan& p : *plans) {
    if (terms->contains(p.tensor->name)) OWL_TRY(check_convertible(*p.tensor, p.target));
  }

  core::ThreadPool pool(o.n_threads);
  MergeSummary summary{.n_tensors = static_cast<int64_t>(plans->size())};
  QuantizeProgress progress{.tensors_total = summary.n_tensors};
  for (const TensorPlan& p : *plans) progress.bytes_in_total += p.tensor->n_bytes;
  // Output data is kept until the writer has it all; tensors copied unchanged borrow the map.
  std::vector<std::vector<uint8_t>> buffers(plans->size());
  gguf::GgufWriter writer;
  for (size_t i = 0; i < plans->size(); ++i) {
    const TensorPlan& p = (*plans)[i];
    const gguf::TensorInfo& t = *p.tensor;
    std::span<const uint8_t> data(t.data, t.n_bytes);
    const auto found = terms->find(t.name);
    if (found != terms->end() || p.target != t.type) {
      buffers[i].resize(static_cast<size_t>(gguf::row_bytes(p.target, t.ne[0]) * t.n_rows()));
      ConvertJob job{.in = t, .target = p.target, .out = buffers[i].data()};
      if (found != terms->end()) {
        job.adjust = [&terms = found->second, n_in = t.ne[0]](int64_t row, float* w) {
          add_terms(terms, n_in, row, w);
        };
      }
      convert_tensor(job, pool);
      data = buffers[i];
      ++(found != terms->end() ? summary.n_merged : summary.n_converted);
    }
    OWL_TRY(writer.add_tensor(t.name, p.target, std::span<const int64_t>(t.ne, static_cast<size_t>(t.n_dims)), data));
    progress.tensors_done = static_cast<int64_t>(i) + 1;
    progress.bytes_in_done += t.n_bytes;
    progress.tensor = t.name;
    if (o.on_progress) o.on_progress(progress);
  }
  copy_metadata(file, o, writer);
  OWL_TRY(writer.write(o.output));
  auto written = gguf::GgufFile::open(o.output);
  if (!written) return make_error("merge: re-reading {}: {}", o.output, written.message());
  summary.output_file_size = written->file_size();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace owl::quantize
