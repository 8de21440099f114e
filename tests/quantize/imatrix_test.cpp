// Importance matrices: collection through forward()'s observer, llama.cpp's file format, and
// importance-weighted quantization that is never worse than the reference in weighted error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "quant/quant.h"
#include "quant/weighted.h"
#include "quantize/imatrix.h"
#include "quantize/quantize.h"

namespace owl::quantize {
namespace {

const std::string kModels = std::string(OWL_SHARED_DIR) + "/models/";

const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. "
    "One day, she saw a big red ball under a tree. She ran to get it, but the ball rolled away. Lily was sad. "
    "Her mom said, \"Don't be sad, Lily. We can find the ball together.\" They looked and looked. At last they "
    "found the ball near the pond. Lily was very happy. She hugged her mom and said thank you. The sun was warm "
    "and the birds sang. Tom, her friend, came to play too. They played with the ball all day until it was time "
    "to go home. That night Lily dreamed of the big red ball and the happy day in the park.";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("owl_imatrix_test_" + name)).string();
}

ImatrixResult collect(const std::string& model) {
  auto r = compute_imatrix({.model = model, .text = kStory, .dataset_name = "story", .n_ctx = 32, .n_threads = 1});
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : ImatrixResult{};
}

TEST(Imatrix, CollectsEveryMatrixButTheOutput) {
  const ImatrixResult r = collect(kModels + "stories260K.gguf");
  // 5 layers x (q, k, v, output, gate, up, down)
  ASSERT_EQ(r.imatrix.entries.size(), 35u);
  EXPECT_FALSE(r.imatrix.entries.count("output.weight"));
  const ImatrixEntry& down = r.imatrix.entries.at("blk.2.ffn_down.weight");
  EXPECT_EQ(down.sum_sq.size(), 172u);
  EXPECT_EQ(down.count, r.n_tokens);
  EXPECT_EQ(r.imatrix.entries.at("blk.0.attn_q.weight").sum_sq.size(), 64u);
  for (const auto& [name, e] : r.imatrix.entries) {
    for (double v : e.sum_sq) ASSERT_TRUE(v > 0 && std::isfinite(v)) << name;
  }
  EXPECT_GT(r.perplexity, 1.0);
  EXPECT_LT(r.perplexity, 100.0);  // a trained model on its own kind of text
}

TEST(Imatrix, FileRoundTrip) {
  const ImatrixResult r = collect(kModels + "stories260K.gguf");
  const std::string path = temp_path("rt.gguf");
  ASSERT_TRUE(save_imatrix(r.imatrix, path).ok());
  auto back = load_imatrix(path);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->chunk_count, r.imatrix.chunk_count);
  EXPECT_EQ(back->chunk_size, 32);
  ASSERT_EQ(back->datasets, std::vector<std::string>{"story"});
  ASSERT_EQ(back->entries.size(), r.imatrix.entries.size());
  for (const auto& [name, e] : r.imatrix.entries) {
    const ImatrixEntry& b = back->entries.at(name);
    EXPECT_EQ(b.count, e.count);
    for (size_t i = 0; i < e.sum_sq.size(); ++i) EXPECT_FLOAT_EQ(static_cast<float>(b.sum_sq[i]), static_cast<float>(e.sum_sq[i]));
  }
  EXPECT_FALSE(load_imatrix(kModels + "stories260K.gguf").ok());  // not an imatrix
  std::filesystem::remove(path);
}

double weighted_error(gguf::TensorType type, const std::vector<uint8_t>& q, const std::vector<float>& x,
                      const std::vector<float>& imp) {
  std::vector<float> y(x.size());
  EXPECT_TRUE(quant::dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(x.size())));
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += imp[i] * (x[i] - y[i]) * (x[i] - y[i]);
  return e;
}

// Over seeded rows with skewed importance, the weighted quantizer lowers the importance-weighted
// error of every K-quant and 32-block format (and never raises it).
TEST(Weighted, LowersImportanceWeightedError) {
  using gguf::TensorType;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 512;
  for (TensorType type : {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
                          TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1}) {
    double ref_total = 0, weighted_total = 0;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n), imp(n);
      for (int64_t i = 0; i < n; ++i) {
        x[i] = normal(rng) * (i % 7 == 0 ? 3.0f : 1.0f);
        imp[i] = std::exp(2.0f * normal(rng));  // a few columns matter far more than the rest
      }
      std::vector<uint8_t> ref(static_cast<size_t>(gguf::row_bytes(type, n))), w(ref.size());
      ASSERT_TRUE(quant::quantize_row(type, x.data(), ref.data(), n));
      ASSERT_TRUE(quant::quantize_row_weighted(type, x.data(), w.data(), n, imp.data()));
      const double er = weighted_error(type, ref, x, imp), ew = weighted_error(type, w, x, imp);
      EXPECT_LE(ew, er * (1 + 1e-9)) << gguf::type_info(type).name;
      ref_total += er;
      weighted_total += ew;
    }
    EXPECT_LT(weighted_total, 0.97 * ref_total) << gguf::type_info(type).name << ": no gain from the importance";
  }
  float x[32] = {}, imp[32] = {};
  uint8_t out[64];
  EXPECT_FALSE(quant::quantize_row_weighted(gguf::TensorType::Q8_0, x, out, 32, imp));
}

TEST(Weighted, QuantizeWithImatrixLoadsAndRecordsIt) {
  const ImatrixResult r = collect(kModels + "kq256.f16.gguf");
  const std::string im = temp_path("kq.imatrix.gguf");
  ASSERT_TRUE(save_imatrix(r.imatrix, im).ok());
  auto loaded = load_imatrix(im);
  ASSERT_TRUE(loaded.ok());
  const std::string out = temp_path("kq.q3_k_m.gguf");
  auto s = quantize_model({.input = kModels + "kq256.f16.gguf", .output = out, .preset = *gguf::find_file_type("q3_k_m"),
                           .imatrix = &*loaded, .imatrix_path = im, .n_threads = 2});
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(s->n_imatrix_used, 14);  // every matrix but the output
  auto f = gguf::GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_string("quantize.imatrix.file"), im);
  EXPECT_EQ(*f->get_int("quantize.imatrix.entries_count"), 14);
  std::filesystem::remove(out);
  std::filesystem::remove(im);
}

}  // namespace
}  // namespace owl::quantize
