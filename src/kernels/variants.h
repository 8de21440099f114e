// Internal: each ISA's file set fills the table entries it has a variant for. Called only
// when the CPU supports that ISA (kernels.cpp), after the lower ISA filled the rest.
#pragma once

#include "kernels/kernels.h"

namespace owl::kernels {

void fill_ref(Kernels& k);
void fill_avx2(Kernels& k);
void fill_avx512(Kernels& k);
// The weight quantizers (avx512/quantize_avx512.cpp): part of fill_avx512.
void fill_quantize_avx512(Kernels& k);

}  // namespace owl::kernels
