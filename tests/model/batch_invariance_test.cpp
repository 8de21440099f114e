// Batch invariance of forward(): one sequence's logits are the same bits alone and in a batch
// with 1, 3 or 7 other sequences of other lengths, its prompt taken in one piece or in chunks
// beside the others' prefill chunks and decode steps (as the scheduler mixes them), and on any
// number of threads. A seeded request then gives the same text whatever the server runs beside it.
// Every weight format has its own matmul kernels, so each model file below is one case.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/forward.h"

namespace owl::model {
namespace {

const std::string kShared = std::string(OWL_SHARED_DIR);

const std::vector<std::string> kModels = {
    std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf",  // F32
    kShared + "/models/stories260K.f16.gguf",
    kShared + "/models/stories260K.bf16.gguf",
    kShared + "/models/stories260K.q4_0.gguf",
    kShared + "/models/stories260K.q4_1.gguf",
    kShared + "/models/stories260K.q5_0.gguf",
    kShared + "/models/stories260K.q5_1.gguf",
    kShared + "/models/stories260K.q8_0.gguf",
    kShared + "/models/kq256.f16.gguf",
    kShared + "/models/kq256.q8_0.gguf",
    kShared + "/models/kq256.q2_k.gguf",
    kShared + "/models/kq256.q3_k_m.gguf",
    kShared + "/models/kq256.q4_k_s.gguf",
    kShared + "/models/kq256.q4_k_m.gguf",  // Q4_K and Q6_K
    kShared + "/models/kq256.q5_k_m.gguf",
    kShared + "/models/kq256.q6_k.gguf",
    kShared + "/reference/synthetic/gemma2.q4_0.gguf",  // softcaps, sliding window, GELU
    kShared + "/reference/synthetic/qwen2.q8_0.gguf",   // QKV biases
    kShared + "/reference/synthetic/phi3.f32.gguf",     // fused QKV and gate|up
};

constexpr int64_t kPrompt = 11;  // the watched sequence: 11 prompt tokens, then 12 decode steps
constexpr int64_t kLength = 23;

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(3, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& v : t) v = tok(rng);
  return t;
}

// A sequence of a batched run: its tokens, how many of them are prompt, the first step it joins
// and its prefill chunk size.
struct Seq {
  std::vector<int32_t> tokens;
  int64_t prompt = 0;
  int64_t join = 0;
  int64_t chunk = 0;
  int64_t done = 0;
};

class BatchInvariance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto m = load_model(GetParam());
    ASSERT_TRUE(m.ok()) << m.message();
    model = std::move(*m);
    n_vocab = model->config.n_vocab;
    watched = random_tokens(kLength, n_vocab, 5);
  }

  std::unique_ptr<Context> context(int n_seq, int n_threads, bool batch_invariant = true) {
    auto ctx = make_context(*model, {.n_ctx = 64, .n_seq = n_seq, .n_batch = 96, .n_threads = n_threads,
                                        .batch_invariant = batch_invariant});
    EXPECT_TRUE(ctx.ok());
    return std::move(*ctx);
  }

  // The watched sequence alone: its prompt in one step, then one token per step; the logits of
  // every position, [kLength][n_vocab].
  std::vector<float> alone(int n_threads, bool batch_invariant = true) {
    auto ctx = context(1, n_threads, batch_invariant);
    std::vector<float> out(static_cast<size_t>(kLength * n_vocab));
    Batch b;
    for (int64_t i = 0; i < kPrompt; ++i) b.add(watched[i], static_cast<int32_t>(i), 0, true);
    EXPECT_TRUE(forward(*model, b, *ctx, out.data()).ok());
    for (int64_t i = kPrompt; i < kLength; ++i) {
      b.clear();
      b.add(watched[i], static_cast<int32_t>(i), 0, true);
      EXPECT_TRUE(forward(*model, b, *ctx, out.data() + i * n_vocab).ok());
    }
    return out;
  }

  std::vector<float> batched(int n_others, int n_threads);

  std::unique_ptr<Model> model;
  int64_t n_vocab = 0;
  std::vector<int32_t> watched;
};

// The watched sequence (prompt in chunks of 4) among n_others sequences of lengths 9..30 that
// join at different steps with other chunk sizes. Each step takes every running sequence's next
// chunk (prefill) or token (decode), in an order that rotates, so the watched rows move through
// the batch. Others ask logits for their last row only, as the scheduler does.
std::vector<float> BatchInvariance::batched(int n_others, int n_threads) {
  std::vector<Seq> seqs{{.tokens = watched, .prompt = kPrompt, .join = 1, .chunk = 4}};
  for (int i = 0; i < n_others; ++i) {
    const int64_t len = 9 + (7 * i + 5) % 22;
    seqs.push_back({.tokens = random_tokens(len, n_vocab, 100 + i), .prompt = len - 3 - i % 3, .join = i % 3,
                    .chunk = 2 + (3 * i) % 7});
  }
  auto ctx = context(n_others + 1, n_threads);
  std::vector<float> got(static_cast<size_t>(kLength * n_vocab), NAN);
  for (int step = 0; seqs[0].done < kLength; ++step) {
    Batch b;
    int64_t n_logits = 0;
    for (size_t k = 0; k < seqs.size(); ++k) {
      const size_t s = (k + static_cast<size_t>(step)) % seqs.size();
      Seq& q = seqs[s];
      if (step < q.join || q.done >= static_cast<int64_t>(q.tokens.size())) continue;
      const int64_t n = q.done < q.prompt ? std::min(q.chunk, q.prompt - q.done) : 1;
      for (int64_t i = q.done; i < q.done + n; ++i) {
        const bool want = s == 0 || i == q.done + n - 1;
        b.add(q.tokens[static_cast<size_t>(i)], static_cast<int32_t>(i), static_cast<int32_t>(s), want);
        n_logits += want;
      }
      q.done += n;
    }
    std::vector<float> out(static_cast<size_t>(n_logits * n_vocab));
    EXPECT_TRUE(forward(*model, b, *ctx, out.data()).ok());
    int64_t row = 0;
    for (size_t i = 0; i < b.token.size(); ++i) {
      if (!b.logits[i]) continue;
      if (b.seq[i] == 0) std::memcpy(&got[b.pos[i] * n_vocab], &out[row * n_vocab], n_vocab * sizeof(float));
      ++row;
    }
  }
  return got;
}

// Positions whose logits differ from `want` in any bit.
std::vector<int64_t> differing(const std::vector<float>& got, const std::vector<float>& want, int64_t n_vocab) {
  std::vector<int64_t> at;
  for (int64_t p = 0; p < kLength; ++p) {
    if (std::memcmp(&got[p * n_vocab], &want[p * n_vocab], n_vocab * sizeof(float)) != 0) at.push_back(p);
  }
  return at;
}

std::string positions(const std::vector<int64_t>& at) {
  std::string s;
  for (int64_t p : at) s += std::to_string(p) + " ";
  return s;
}

TEST_P(BatchInvariance, LogitsEqualTheSequenceAloneBitForBit) {
  const std::vector<float> want = alone(2);
  for (int n_others : {1, 3, 7}) {
    const std::vector<int64_t> at = differing(batched(n_others, 2), want, n_vocab);
    EXPECT_TRUE(at.empty()) << n_others << " other sequences: logits differ at positions " << positions(at);
  }
}

TEST_P(BatchInvariance, LogitsDoNotDependOnTheThreadCount) {
  const std::vector<float> want = alone(1);
  for (int n_threads : {2, 3, 4}) {
    const std::vector<int64_t> at = differing(alone(n_threads), want, n_vocab);
    EXPECT_TRUE(at.empty()) << n_threads << " threads: logits differ at positions " << positions(at);
  }
  const std::vector<int64_t> at = differing(batched(3, 3), want, n_vocab);
  EXPECT_TRUE(at.empty()) << "3 other sequences on 3 threads: logits differ at positions " << positions(at);
  // Without batch invariance too: no kernel splits a sum over threads.
  const std::vector<float> want_default = alone(1, false);
  for (int n_threads : {2, 3}) {
    const std::vector<int64_t> d = differing(alone(n_threads, false), want_default, n_vocab);
    EXPECT_TRUE(d.empty()) << n_threads << " threads, not batch invariant: logits differ at positions " << positions(d);
  }
}

std::string model_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.find_last_of('/') + 1);
  name = name.substr(0, name.size() - 5);  // .gguf
  for (char& c : name) {
    if (c == '.' || c == '-') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Models, BatchInvariance, ::testing::ValuesIn(kModels), model_name);

}  // namespace
}  // namespace owl::model
