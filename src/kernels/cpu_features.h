// CPU feature detection: what the processor supports and the OS lets us use (XGETBV).
#pragma once

#include <string_view>

namespace owl::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA + F16C, with YMM state enabled by the OS
  bool avx512 = false;       // AVX-512 F/BW/DQ/VL, with ZMM state enabled by the OS
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
};

CpuFeatures detect_cpu_features();
std::string_view isa_name(Isa isa);

// The best ISA this CPU and OS support, lowered by the environment variable OWL_ISA
// (scalar | avx2 | avx512) when set. An override above what the machine supports is ignored
// with a warning on stderr.
Isa select_isa(const CpuFeatures& features);

}  // namespace owl::kernels
