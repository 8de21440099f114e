// The dispatch table: the one switch on weight format for matmul, filled once at start-up.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/result.h"
#include "kernels/ref/ref.h"
#include "kernels/variants.h"
#include "quant/quant.h"

namespace owl::kernels {

void fill_ref(Kernels& k) {
  auto set = [&](TensorType w, DotFn dot, TensorType act) {
    k.dot[static_cast<uint32_t>(w)] = DotKernel{.dot = dot, .act_type = act};
  };
  using T = TensorType;
  set(T::F32, dot_f32_f32_ref, T::F32);
  set(T::F16, dot_f16_f16_ref, T::F16);
  set(T::BF16, dot_bf16_bf16_ref, T::BF16);
  set(T::Q4_0, dot_q4_0_q8_0_ref, T::Q8_0);
  set(T::Q4_1, dot_q4_1_q8_1_ref, T::Q8_1);
  set(T::Q5_0, dot_q5_0_q8_0_ref, T::Q8_0);
  set(T::Q5_1, dot_q5_1_q8_1_ref, T::Q8_1);
  set(T::Q8_0, dot_q8_0_q8_0_ref, T::Q8_0);
  set(T::Q2_K, dot_q2_K_q8_K_ref, T::Q8_K);
  set(T::Q3_K, dot_q3_K_q8_K_ref, T::Q8_K);
  set(T::Q4_K, dot_q4_K_q8_K_ref, T::Q8_K);
  set(T::Q5_K, dot_q5_K_q8_K_ref, T::Q8_K);
  set(T::Q6_K, dot_q6_K_q8_K_ref, T::Q8_K);
  set(T::Q8_K, dot_q8_K_q8_K_ref, T::Q8_K);
  k.quantize_q8_0 = quantize_row_q8_0_ref;
  k.quantize_panel_q8_0 = quantize_row_panel_q8_0_ref;
  k.quantize_q8_1 = quantize_row_q8_1_ref;
  k.quantize_q8_K = quantize_row_q8_K_ref;
  k.quantize_f16 = quantize_row_f16_ref;
  k.quantize_bf16 = quantize_row_bf16_ref;
  k.widen_f16 = widen_row_f16_ref;
  k.widen_bf16 = widen_row_bf16_ref;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q4_0)] = quantize_weight_q4_0_ref;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q8_0)] = quantize_weight_q8_0_ref;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q4_K)] = quantize_weight_q4_K_ref;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q5_K)] = quantize_weight_q5_K_ref;
  k.quantize_weights[static_cast<uint32_t>(TensorType::Q6_K)] = quantize_weight_q6_K_ref;
  k.rms_norm = rms_norm_ref;
  k.softmax = softmax_ref;
  k.rope = rope_ref;
  k.silu = silu_ref;
  k.gelu = gelu_ref;
  k.swiglu = swiglu_ref;
  k.geglu = geglu_ref;
  k.axpy_rows = axpy_rows_ref;
  k.attention_group = attention_group_ref;
}

bool quantize_weight_row(const Kernels& k, TensorType type, const float* x, void* y, int64_t n) {
  const uint32_t slot = static_cast<uint32_t>(type);
  if (slot < k.quantize_weights.size() && k.quantize_weights[slot] != nullptr) {
    k.quantize_weights[slot](x, y, n);
    return true;
  }
  return quant::quantize_row(type, x, y, n);
}

Kernels make_kernels(Isa isa) {
  Kernels k;
  k.isa = isa;
  fill_ref(k);
  if (isa >= Isa::kAvx2) fill_avx2(k);
  // The AVX-512 integer kernels use VNNI; a CPU without it keeps the AVX2 ones.
  if (isa >= Isa::kAvx512 && detect_cpu_features().avx512_vnni) fill_avx512(k);
  return k;
}

Kernels make_kernels() {
  const Isa isa = select_isa(detect_cpu_features());
  // Logged only when asked for (an override, or OWL_VERBOSE=1): contexts are made often and
  // `owl run` prints to the terminal.
  const char* forced = std::getenv("OWL_ISA");
  const char* verbose = std::getenv("OWL_VERBOSE");
  if ((forced != nullptr && *forced != '\0') || (verbose != nullptr && std::string(verbose) == "1")) {
    std::fprintf(stderr, "owl: kernels: %s\n", std::string(isa_name(isa)).c_str());
  }
  return make_kernels(isa);
}

}  // namespace owl::kernels
