// The packed weight layout (kernels.h, pack_weights): plain byte moves, the same on every CPU.
#include <cstring>

#include "core/result.h"
#include "kernels/kernels.h"
#include "quant/blocks.h"

namespace owl::kernels {

bool packable(TensorType type, int64_t n_out, int64_t n_in) {
  return type == TensorType::Q4_0 && n_out > 0 && n_out % kPanelW == 0 && n_in > 0 && n_in % quant::kQK == 0;
}

void pack_weights(TensorType type, const void* w, int64_t n_out, int64_t n_in, void* out) {
  OWL_CHECK(packable(type, n_out, n_in));
  const int64_t nb = n_in / quant::kQK;
  const auto* rows = static_cast<const quant::BlockQ4_0*>(w);
  auto* dst = static_cast<uint8_t*>(out);
  const size_t group_bytes = static_cast<size_t>(kPanelW * nb) * sizeof(quant::BlockQ4_0);
  for (int64_t g = 0; g < n_out / kPanelW; ++g) {
    uint8_t* quants = dst + static_cast<size_t>(g) * group_bytes;
    uint8_t* scales = quants + static_cast<size_t>(nb) * kPanelW * 16;
    for (int64_t b = 0; b < nb; ++b) {
      for (int l = 0; l < kPanelW; ++l) {
        const quant::BlockQ4_0& block = rows[(g * kPanelW + l) * nb + b];
        for (int j = 0; j < 4; ++j) std::memcpy(quants + b * 256 + j * 64 + l * 4, block.qs + 4 * j, 4);
        std::memcpy(scales + b * 32 + l * 2, &block.d, 2);
      }
    }
  }
}

bool reads_packed(const Kernels& k, TensorType type) {
  const DotKernel& dk = k.dot_for(type);
  return dk.packed_rows != nullptr && dk.packed_panel != nullptr && dk.pack != nullptr;
}

}  // namespace owl::kernels
