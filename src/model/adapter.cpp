#include "model/adapter.h"

#include <fmt/format.h>

namespace owl::model {

const char* linear_kind_name(LinearKind kind) {
  switch (kind) {
    case LinearKind::kAttnQ: return "attn_q";
    case LinearKind::kAttnK: return "attn_k";
    case LinearKind::kAttnV: return "attn_v";
    case LinearKind::kAttnQkv: return "attn_qkv";
    case LinearKind::kAttnOutput: return "attn_output";
    case LinearKind::kFfnGate: return "ffn_gate";
    case LinearKind::kFfnUp: return "ffn_up";
    case LinearKind::kFfnDown: return "ffn_down";
    case LinearKind::kCount: break;
  }
  return "unknown";
}

core::Status Adapter::set(WeightId id, std::vector<float> a, std::vector<float> b, int64_t rank, int64_t n_in,
                          int64_t n_out) {
  const size_t i = static_cast<size_t>(id.layer) * static_cast<size_t>(LinearKind::kCount) + static_cast<size_t>(id.kind);
  const std::string what = fmt::format("adapter {}: blk.{}.{}", name, id.layer, linear_kind_name(id.kind));
  if (id.layer < 0 || i >= pairs.size()) return core::make_error("{}: no such layer weight", what);
  if (rank < 1 || rank > kMaxLoraRank) return core::make_error("{}: rank {} outside 1..{}", what, rank, kMaxLoraRank);
  if (a.size() != static_cast<size_t>(rank * n_in) || b.size() != static_cast<size_t>(n_out * rank)) {
    return core::make_error("{}: A holds {} and B {} values, not {} x {} and {} x {}", what, a.size(), b.size(), rank,
                            n_in, n_out, rank);
  }
  storage.push_back(std::move(a));
  const float* pa = storage.back().data();
  storage.push_back(std::move(b));
  pairs[i] = LoraPair{.a = pa, .b = storage.back().data(), .rank = rank, .n_in = n_in, .n_out = n_out};
  return {};
}

std::string AdapterSet::key() const {
  std::string k;
  for (const auto& [adapter, scale] : adapters) {
    // The address tells two loads of one file apart: their weights may differ after a reload.
    k += fmt::format("{}@{}*{};", adapter->name, static_cast<const void*>(adapter.get()), scale);
  }
  return k;
}

}  // namespace owl::model
