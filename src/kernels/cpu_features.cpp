#include "kernels/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace owl::kernels {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  const bool fma = (ecx >> 12) & 1;
  const bool f16c = (ecx >> 29) & 1;
  const bool avx = (ecx >> 28) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512f = (ebx >> 16) & 1;
  const bool avx512dq = (ebx >> 17) & 1;
  const bool avx512bw = (ebx >> 30) & 1;
  const bool avx512vl = (ebx >> 31) & 1;
  const bool avx512vnni = (ecx >> 11) & 1;
  f.avx2 = ymm_os && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_vnni = f.avx512 && avx512vnni;
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  if (__get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1)) {
    f.avx512_bf16 = f.avx512 && ((eax1 >> 5) & 1);
    f.avx_vnni = f.avx2 && ((eax1 >> 4) & 1);
  }
  return f;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa select_isa(const CpuFeatures& features) {
  Isa best = features.avx512 ? Isa::kAvx512 : features.avx2 ? Isa::kAvx2 : Isa::kScalar;
  const char* env = std::getenv("OWL_ISA");
  if (env == nullptr || *env == '\0') return best;
  const std::string want(env);
  Isa forced;
  if (want == "scalar") {
    forced = Isa::kScalar;
  } else if (want == "avx2") {
    forced = Isa::kAvx2;
  } else if (want == "avx512") {
    forced = Isa::kAvx512;
  } else {
    std::fprintf(stderr, "owl: OWL_ISA=%s is not one of scalar, avx2, avx512; using %s\n", env,
                 std::string(isa_name(best)).c_str());
    return best;
  }
  if (static_cast<int>(forced) > static_cast<int>(best)) {
    std::fprintf(stderr, "owl: OWL_ISA=%s is not supported by this CPU; using %s\n", env,
                 std::string(isa_name(best)).c_str());
    return best;
  }
  return forced;
}

}  // namespace owl::kernels
