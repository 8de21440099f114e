// Kernel benchmarks: decode matmul (1 activation row) in GB/s of weights read, per weight type
// and ISA, next to the machine's measured read bandwidth (a 2-thread streaming sum over 1 GiB in 2 MiB pages);
// decode from cache (decode_hot: the kernel's compute limit); a decode step of 16 sequences
// (decode_batch, weights from DRAM) and prefill matmul (weights in cache) in GFLOP/s. Figures
// only; nothing here asserts.
//   owl_bench_kernels [--benchmark_filter=decode/q4_0] [--threads=N]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/huge_buffer.h"
#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/half.h"

namespace owl::kernels {
namespace {

int g_threads = 2;
double g_read_gbs = 0.0;

// Weight matrix of random bytes with every scale field set to a finite f16 (float types get
// real values), so no NaN or denormal slows the float paths.
std::vector<uint8_t> make_weights(TensorType type, int64_t n_out, int64_t n_in) {
  const gguf::TensorTypeInfo& info = gguf::type_info(type);
  const int64_t n_blocks = n_out * n_in / info.block_size;
  std::vector<uint8_t> w(static_cast<size_t>(n_blocks * info.type_size));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  if (type == TensorType::F32 || type == TensorType::F16 || type == TensorType::BF16) {
    for (int64_t i = 0; i < n_blocks; ++i) {
      const float v = normal(rng);
      if (type == TensorType::F32) std::memcpy(w.data() + 4 * i, &v, 4);
      const uint16_t h = type == TensorType::F16 ? quant::f32_to_f16(v) : quant::f32_to_bf16(v);
      if (type != TensorType::F32) std::memcpy(w.data() + 2 * i, &h, 2);
    }
    return w;
  }
  for (size_t i = 0; i < w.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(w.data() + i, &r, std::min<size_t>(4, w.size() - i));
  }
  const uint16_t d = quant::f32_to_f16(0.01f);
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* p = w.data() + b * info.type_size;
    switch (type) {
      case TensorType::Q2_K: std::memcpy(p + offsetof(quant::BlockQ2_K, d), &d, 2); std::memcpy(p + offsetof(quant::BlockQ2_K, dmin), &d, 2); break;
      case TensorType::Q3_K: std::memcpy(p + offsetof(quant::BlockQ3_K, d), &d, 2); break;
      case TensorType::Q6_K: std::memcpy(p + offsetof(quant::BlockQ6_K, d), &d, 2); break;
      case TensorType::Q4_1: case TensorType::Q5_1: case TensorType::Q4_K: case TensorType::Q5_K:
        std::memcpy(p, &d, 2); std::memcpy(p + 2, &d, 2); break;
      default: std::memcpy(p, &d, 2); break;
    }
  }
  return w;
}

struct Shape {
  int64_t n_out, n_in;
};

// hot: W stays in cache (one copy): a decode kernel's compute limit, or prefill.
// packed: W in the packed layout (pack_weights), as a loaded model holds Q4_0.
void bench_matmul(benchmark::State& state, Isa isa, TensorType type, Shape shape, int64_t n_rows, bool hot,
                  bool packed) {
  const Kernels k = make_kernels(isa);
  core::ThreadPool pool(g_threads);
  // Otherwise it rotates over copies of W totalling >= 512 MiB, as a model's layers do, so each
  // matmul reads its weights from DRAM rather than from the 32 MiB L3. In 2 MiB pages, as a
  // model's weights are mapped.
  std::vector<uint8_t> w0 = make_weights(type, shape.n_out, shape.n_in);
  if (packed) {
    std::vector<uint8_t> p(w0.size());
    pack_weights(type, w0.data(), shape.n_out, shape.n_in, p.data());
    w0 = std::move(p);
  }
  const size_t n_copies = !hot ? std::max<size_t>(1, (size_t{512} << 20) / w0.size()) : 1;
  core::HugePageBuffer w(w0.size() * n_copies);
  for (size_t c = 0; c < n_copies; ++c) std::memcpy(w.data() + c * w0.size(), w0.data(), w0.size());
  std::vector<float> x(static_cast<size_t>(n_rows * shape.n_in));
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(n_rows * shape.n_out));
  std::vector<uint8_t> scratch(matmul_scratch_bytes(k, type, shape.n_in, n_rows));
  MatmulArgs args{.w_type = type, .w = w.data(), .x = x.data(), .y = y.data(), .n_in = shape.n_in,
                        .n_out = shape.n_out, .n_rows = n_rows, .scratch = scratch.data(),
                        .scratch_bytes = scratch.size(), .w_packed = packed};
  size_t copy = 0;
  for (auto _ : state) {
    args.w = w.data() + copy * w0.size();
    copy = copy + 1 == n_copies ? 0 : copy + 1;
    matmul(k, pool, args);
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(iters * w0.size()));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n_rows * shape.n_in * shape.n_out * iters / 1e9,
                                                 benchmark::Counter::kIsRate);
  if (!hot && g_read_gbs > 0) {
    state.counters["%bw"] = benchmark::Counter(100.0 * w0.size() * iters / 1e9 / g_read_gbs,
                                               benchmark::Counter::kIsRate);
  }
}

void register_all() {
  const CpuFeatures f = detect_cpu_features();
  std::vector<Isa> isas{Isa::kScalar};
  if (f.avx2) isas.push_back(Isa::kAvx2);
  if (f.avx512 && f.avx512_vnni) isas.push_back(Isa::kAvx512);
  const TensorType all[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
                            TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K, TensorType::Q3_K,
                            TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
  const TensorType hot[] = {TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                            TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K};
  const Shape decode_shapes[] = {{5632, 2048}, {4096, 4096}, {32000, 2048}};
  for (TensorType t : all) {
    for (Isa isa : isas) {
      for (Shape s : decode_shapes) {
        const std::string name = "decode/" + std::string(gguf::type_info(t).name) + "/" +
                                 std::string(isa_name(isa)) + "/" + std::to_string(s.n_out) + "x" + std::to_string(s.n_in);
        benchmark::RegisterBenchmark(name.c_str(), bench_matmul, isa, t, s, int64_t{1}, false, false)
            ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
      }
      const std::string hot = "decode_hot/" + std::string(gguf::type_info(t).name) + "/" + std::string(isa_name(isa)) +
                              "/2048x2048";
      benchmark::RegisterBenchmark(hot.c_str(), bench_matmul, isa, t, Shape{2048, 2048}, int64_t{1}, true, false)
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    }
  }
  for (Isa isa : isas) {  // the packed layout of a loaded model's Q4_0
    if (!reads_packed(make_kernels(isa), TensorType::Q4_0)) continue;
    const std::string suffix = "/q4_0/" + std::string(isa_name(isa)) + "/";
    for (Shape s : decode_shapes) {
      const std::string shape = std::to_string(s.n_out) + "x" + std::to_string(s.n_in);
      benchmark::RegisterBenchmark(("decode_packed" + suffix + shape).c_str(), bench_matmul, isa, TensorType::Q4_0, s,
                                   int64_t{1}, false, true)
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    }
    benchmark::RegisterBenchmark(("decode_packed_hot" + suffix + "2048x2048").c_str(), bench_matmul, isa,
                                 TensorType::Q4_0, Shape{2048, 2048}, int64_t{1}, true, true)
        ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    for (const int64_t rows : {4, 16}) {  // decode steps of 4 and 16 sequences (rows16 unpacked: below)
      benchmark::RegisterBenchmark(("decode_batch_packed" + suffix + "5632x2048/rows" + std::to_string(rows)).c_str(),
                                   bench_matmul, isa, TensorType::Q4_0, Shape{5632, 2048}, rows, false, true)
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    }
    benchmark::RegisterBenchmark(("decode_batch" + suffix + "5632x2048/rows4").c_str(), bench_matmul, isa,
                                 TensorType::Q4_0, Shape{5632, 2048}, int64_t{4}, false, false)
        ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
    for (int64_t rows : {64, 512}) {
      benchmark::RegisterBenchmark(("prefill_packed" + suffix + "4096x4096/rows" + std::to_string(rows)).c_str(),
                                   bench_matmul, isa, TensorType::Q4_0, Shape{4096, 4096}, rows, true, true)
          ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
    }
  }
  for (TensorType t : hot) {
    for (Isa isa : isas) {
      if (isa == Isa::kScalar) continue;  // minutes per iteration; decode shows its speed
      // A decode step of 16 sequences: W from DRAM, as in decode.
      const std::string batched = "decode_batch/" + std::string(gguf::type_info(t).name) + "/" +
                                  std::string(isa_name(isa)) + "/5632x2048/rows16";
      benchmark::RegisterBenchmark(batched.c_str(), bench_matmul, isa, t, Shape{5632, 2048}, int64_t{16}, false, false)
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.3);
      for (int64_t rows : {16, 64, 512}) {
        const std::string name = "prefill/" + std::string(gguf::type_info(t).name) + "/" +
                                 std::string(isa_name(isa)) + "/4096x4096/rows" + std::to_string(rows);
        benchmark::RegisterBenchmark(name.c_str(), bench_matmul, isa, t, Shape{4096, 4096}, rows, true, false)
            ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
      }
    }
  }
}

}  // namespace
}  // namespace owl::kernels

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) owl::kernels::g_threads = std::atoi(argv[i] + 10);
  }
  {
    owl::core::ThreadPool pool(owl::kernels::g_threads);
    owl::kernels::g_read_gbs = owl::kernels::ReadBandwidth().measure(pool, 5);
  }
  std::printf("measured read bandwidth: %.1f GB/s (%d threads, streaming 256-bit sum over 1 GiB in 2 MiB pages, best of 5)\n",
              owl::kernels::g_read_gbs, owl::kernels::g_threads);
  benchmark::AddCustomContext("read_bandwidth_GBps", std::to_string(owl::kernels::g_read_gbs));
  owl::kernels::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
