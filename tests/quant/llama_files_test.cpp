// Ground truth from llama.cpp: the quantized model files in ../shared/models were written by
// llama-quantize (no importance matrix). For every tensor, quantizing the source tensor with
// owl must give the file's bytes exactly, and dequantizing the file's tensor must stay within
// the format's error budget of the source.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "error_budget.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace owl::quant {
namespace {

using gguf::GgufFile;
using gguf::TensorInfo;
using gguf::TensorType;

struct FilePair {
  const char* source;     // file in ../shared/models holding the unquantized weights
  const char* quantized;  // llama-quantize's output from it
};

void PrintTo(const FilePair& pair, std::ostream* os) { *os << pair.source << " -> " << pair.quantized; }

std::string model_path(const char* name) { return std::string(OWL_SHARED_DIR) + "/models/" + name; }

// All rows of a tensor as floats: [n_rows, ne0].
std::vector<float> dequantize_tensor(const TensorInfo& t) {
  const int64_t ne0 = t.ne[0];
  const int64_t row_bytes = gguf::row_bytes(t.type, ne0);
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  for (int64_t r = 0; r < t.n_rows(); ++r) {
    EXPECT_TRUE(dequantize_row(t.type, t.data + r * row_bytes, out.data() + r * ne0, ne0));
  }
  return out;
}

struct Mismatch {
  int64_t bytes = 0;   // differing bytes
  int64_t blocks = 0;  // blocks with at least one differing byte
};

Mismatch compare_blocks(const uint8_t* ours, const uint8_t* theirs, int64_t n_bytes, int64_t block_bytes) {
  Mismatch m;
  for (int64_t b = 0; b < n_bytes; b += block_bytes) {
    int64_t in_block = 0;
    for (int64_t i = b; i < b + block_bytes; ++i) in_block += ours[i] != theirs[i];
    m.bytes += in_block;
    m.blocks += in_block > 0;
  }
  return m;
}

class LlamaQuantizedFile : public ::testing::TestWithParam<FilePair> {};

TEST_P(LlamaQuantizedFile, QuantizeIsByteIdenticalAndDequantizeWithinBudget) {
  const FilePair pair = GetParam();
  auto source = GgufFile::open(model_path(pair.source));
  ASSERT_TRUE(source.ok()) << source.message();
  auto quantized = GgufFile::open(model_path(pair.quantized));
  ASSERT_TRUE(quantized.ok()) << quantized.message();

  int64_t n_checked = 0;
  std::map<std::string, int64_t> identical_blocks;  // per type name, for the summary line
  for (const TensorInfo& q : quantized->tensors()) {
    SCOPED_TRACE(std::string(pair.quantized) + " tensor " + q.name + " (" +
                 std::string(gguf::type_info(q.type).name) + ")");
    const TensorInfo* s = source->find_tensor(q.name);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->n_elements(), q.n_elements());
    ASSERT_EQ(s->ne[0], q.ne[0]);
    const std::vector<float> x = dequantize_tensor(*s);

    const int64_t ne0 = q.ne[0];
    const int64_t row_bytes = gguf::row_bytes(q.type, ne0);
    ASSERT_EQ(static_cast<uint64_t>(row_bytes * q.n_rows()), q.n_bytes);
    std::vector<uint8_t> ours(q.n_bytes);
    for (int64_t r = 0; r < q.n_rows(); ++r) {
      ASSERT_TRUE(quantize_row(q.type, x.data() + r * ne0, ours.data() + r * row_bytes, ne0));
    }
    const int64_t block_bytes = gguf::type_info(q.type).type_size;
    const Mismatch m = compare_blocks(ours.data(), q.data, static_cast<int64_t>(q.n_bytes), block_bytes);
    EXPECT_EQ(m.bytes, 0) << m.blocks << " of " << q.n_bytes / block_bytes << " blocks differ";
    identical_blocks[std::string(gguf::type_info(q.type).name)] +=
        static_cast<int64_t>(q.n_bytes) / block_bytes - m.blocks;

    const std::vector<float> y = dequantize_tensor(q);
    const double rel = testing::relative_rmse(x.data(), y.data(), q.n_elements());
    EXPECT_LE(rel, testing::relative_rmse_budget(q.type));
    ++n_checked;
  }
  EXPECT_EQ(n_checked, static_cast<int64_t>(source->tensors().size()));
  std::cout << pair.quantized << ": byte-identical blocks:";
  for (const auto& [type, blocks] : identical_blocks) std::cout << " " << type << " " << blocks;
  std::cout << "\n";
}

std::string pair_name(const ::testing::TestParamInfo<FilePair>& info) {
  std::string name = info.param.quantized;
  name = name.substr(0, name.size() - 5);  // drop ".gguf"
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Stories260K, LlamaQuantizedFile,
                         ::testing::Values(FilePair{"stories260K.gguf", "stories260K.f16.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.bf16.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.q8_0.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.q4_0.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.q4_1.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.q5_0.gguf"},
                                           FilePair{"stories260K.gguf", "stories260K.q5_1.gguf"}),
                         pair_name);

INSTANTIATE_TEST_SUITE_P(Kq256, LlamaQuantizedFile,
                         ::testing::Values(FilePair{"kq256.f16.gguf", "kq256.q8_0.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q2_k.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q3_k_m.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q4_k_s.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q4_k_m.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q5_k_m.gguf"},
                                           FilePair{"kq256.f16.gguf", "kq256.q6_k.gguf"}),
                         pair_name);

}  // namespace
}  // namespace owl::quant
