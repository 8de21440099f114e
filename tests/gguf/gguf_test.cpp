#include "gguf/gguf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace owl::gguf {
namespace {

namespace fs = std::filesystem;

const std::string kCorpus = std::string(OWL_SOURCE_DIR) + "/tests/data/gguf";
const std::string kShared = OWL_SHARED_DIR;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("owl_gguf_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(GgufCorpus, EveryMalformedFileIsRefusedWithItsError) {
  std::ifstream manifest(kCorpus + "/expected.txt");
  ASSERT_TRUE(manifest.good());
  std::string line;
  int cases = 0;
  while (std::getline(manifest, line)) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string file = line.substr(0, tab);
    const std::string expected = line.substr(tab + 1);
    auto result = GgufFile::open(kCorpus + "/" + file);
    if (expected.empty()) {
      EXPECT_TRUE(result.ok()) << file << ": " << (result.ok() ? "" : result.message());
    } else {
      ASSERT_FALSE(result.ok()) << file << " was accepted";
      EXPECT_NE(result.message().find(expected), std::string::npos)
          << file << ": got \"" << result.message() << "\", expected it to contain \"" << expected << "\"";
      EXPECT_NE(result.message().find(file), std::string::npos) << "error does not name the file";
    }
    ++cases;
  }
  EXPECT_GE(cases, 25);
}

TEST(GgufCorpus, ValidFileHasEveryValue) {
  auto file = GgufFile::open(kCorpus + "/valid.gguf");
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(*file->get_string("general.architecture"), "llama");
  EXPECT_EQ(*file->get_int("test.u32"), 7);
  auto strings = file->get_string_array("test.strings");
  ASSERT_TRUE(strings.ok());
  EXPECT_EQ(*strings, (std::vector<std::string>{"a", "bc"}));
  const Value* nested = file->find("test.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->as_array()->items.size(), 1u);
  const Array* inner = nested->as_array()->items[0].as_array();
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(inner->element_type, ValueType::I16);
  EXPECT_EQ(*inner->items[0].as_int(), -1);
  EXPECT_EQ(*inner->items[1].as_int(), 2);
  // Typed getters name the key and the type found.
  auto wrong = file->get_string("test.u32");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("'test.u32' has type u32 (expected string)"), std::string::npos);
  EXPECT_FALSE(file->get_int("no.such.key").ok());
  EXPECT_EQ(*file->get_int_or("no.such.key", 5), 5);

  const TensorInfo* a = file->find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, TensorType::F32);
  EXPECT_EQ(a->ne[0], 32);
  EXPECT_EQ(a->ne[1], 2);
  EXPECT_EQ(a->n_bytes, 256u);
  float values[64];
  std::memcpy(values, a->data, sizeof(values));
  EXPECT_EQ(values[5], 1.25f);
  const TensorInfo* b = file->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, TensorType::Q8_0);
  EXPECT_EQ(b->n_bytes, 68u);
  EXPECT_EQ(file->find_tensor("c"), nullptr);
}

TEST(GgufCorpus, Version2IsRead) {
  std::vector<uint8_t> bytes = read_bytes(kCorpus + "/valid.gguf");
  bytes[4] = 2;
  auto file = GgufFile::parse(bytes, "v2");
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file->version(), 2u);
}

// Every prefix of a valid file is refused (or, for prefixes that only lose trailing padding,
// accepted) without reading out of bounds: ASan builds check the "never reads" part.
TEST(GgufCorpus, EveryTruncationIsRefusedCleanly) {
  const std::vector<uint8_t> bytes = read_bytes(kCorpus + "/valid.gguf");
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto file = GgufFile::parse(prefix, "prefix");
    if (file.ok()) {
      for (const TensorInfo& t : file->tensors()) {
        EXPECT_LE(t.data + t.n_bytes, prefix.data() + prefix.size());
      }
    }
  }
}

TEST(GgufCorpus, RandomByteFlipsNeverCrash) {
  const std::vector<uint8_t> bytes = read_bytes(kCorpus + "/valid.gguf");
  std::mt19937 rng(42);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> mutated = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<uint8_t>(rng());
    auto file = GgufFile::parse(mutated, "mutated");
    if (file.ok()) {
      for (const TensorInfo& t : file->tensors()) {
        EXPECT_LE(t.data + t.n_bytes, mutated.data() + mutated.size());
      }
    }
  }
}

std::vector<std::string> shared_gguf_files() {
  std::vector<std::string> paths;
  for (const char* dir : {"/models", "/vocab", "/reference/synthetic", "/reference/lora"}) {
    for (const auto& entry : fs::directory_iterator(kShared + dir)) {
      if (entry.path().extension() == ".gguf") paths.push_back(entry.path().string());
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

TEST(GgufShared, EveryFileLoads) {
  const auto paths = shared_gguf_files();
  ASSERT_GE(paths.size(), 30u);
  for (const std::string& path : paths) {
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.message();
    EXPECT_TRUE(file->get_string("general.architecture").ok()) << path;
  }
}

TEST(GgufShared, Stories260KShape) {
  auto file = GgufFile::open(kShared + "/models/stories260K.gguf");
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(*file->get_string("general.architecture"), "llama");
  EXPECT_EQ(*file->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(*file->get_int("llama.block_count"), 5);
  EXPECT_EQ(file->get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  const TensorInfo* q = file->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::F32);
  EXPECT_EQ(q->ne[0], 64);
  EXPECT_EQ(q->ne[1], 64);
  const TensorInfo* down = file->find_tensor("blk.4.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 172);
  EXPECT_EQ(down->ne[1], 64);
}

// Writes a file back from what was read.
Status rewrite(const GgufFile& file, const std::string& out) {
  GgufWriter writer;
  writer.copy_metadata(file);
  for (const TensorInfo& t : file.tensors()) {
    OWL_TRY(writer.add_tensor(t.name, t.type, std::span<const int64_t>(t.ne, static_cast<size_t>(t.n_dims)),
                              std::span<const uint8_t>(t.data, t.n_bytes)));
  }
  return writer.write(out);
}

void expect_same(const GgufFile& a, const GgufFile& b) {
  ASSERT_EQ(a.metadata().size(), b.metadata().size());
  for (size_t i = 0; i < a.metadata().size(); ++i) {
    EXPECT_EQ(a.metadata()[i].key, b.metadata()[i].key);
    EXPECT_EQ(a.metadata()[i].value.type, b.metadata()[i].value.type);
    EXPECT_EQ(a.metadata()[i].value.to_display(1u << 20), b.metadata()[i].value.to_display(1u << 20));
  }
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const TensorInfo& x = a.tensors()[i];
    const TensorInfo& y = b.tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.n_dims, y.n_dims);
    for (int d = 0; d < kMaxDims; ++d) EXPECT_EQ(x.ne[d], y.ne[d]);
    ASSERT_EQ(x.n_bytes, y.n_bytes);
    EXPECT_EQ(std::memcmp(x.data, y.data, x.n_bytes), 0) << x.name;
  }
}

TEST(GgufWriter, ReadWriteReadIsIdentical) {
  for (const std::string& path : shared_gguf_files()) {
    auto original = GgufFile::open(path);
    ASSERT_TRUE(original.ok()) << original.message();
    const std::string out = temp_path("roundtrip.gguf");
    ASSERT_TRUE(rewrite(*original, out).ok()) << path;
    auto again = GgufFile::open(out);
    ASSERT_TRUE(again.ok()) << again.message();
    expect_same(*original, *again);
    // llama.cpp lays files out the same way, so the bytes match too.
    EXPECT_EQ(read_bytes(path), read_bytes(out)) << path;
    fs::remove(out);
  }
}

TEST(GgufWriter, RefusesBadTensorsAndLeavesNoFile) {
  GgufWriter writer;
  const int64_t shape[] = {48};
  std::vector<uint8_t> data(34 * 2);
  auto bad_row = writer.add_tensor("x", TensorType::Q8_0, shape, data);
  ASSERT_FALSE(bad_row.ok());
  EXPECT_NE(bad_row.message().find("row length 48"), std::string::npos);
  const int64_t good_shape[] = {64};
  auto wrong_size = writer.add_tensor("x", TensorType::Q8_0, good_shape, std::span<const uint8_t>(data.data(), 67));
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.message().find("67 bytes given, 68 expected"), std::string::npos);
  ASSERT_TRUE(writer.add_tensor("x", TensorType::Q8_0, good_shape, data).ok());
  EXPECT_FALSE(writer.add_tensor("x", TensorType::Q8_0, good_shape, data).ok());

  auto failed = writer.write("/nonexistent-dir/x.gguf");
  EXPECT_FALSE(failed.ok());
  const std::string dir = temp_path("dir");
  fs::create_directories(dir);
  writer.set("general.alignment", Value::u32(64));
  ASSERT_TRUE(writer.write(dir + "/x.gguf").ok());
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "temporary file left behind";
  auto file = GgufFile::open(dir + "/x.gguf");
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  fs::remove_all(dir);
}

// Tensors whose bytes come while the file is written give the same file as tensors given up
// front, each asked for once in file order; a wrong size or an error leaves no file.
TEST(GgufWriter, TensorsGivenLaterWriteTheSameBytes) {
  for (const std::string& path : shared_gguf_files()) {
    auto original = GgufFile::open(path);
    ASSERT_TRUE(original.ok()) << original.message();
    GgufWriter writer;
    writer.copy_metadata(*original);
    const auto& tensors = original->tensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorInfo& t = tensors[i];
      const std::span<const int64_t> shape(t.ne, static_cast<size_t>(t.n_dims));
      if (i % 2 == 0) {
        ASSERT_TRUE(writer.add_tensor_later(t.name, t.type, shape).ok());
      } else {
        ASSERT_TRUE(writer.add_tensor(t.name, t.type, shape, std::span<const uint8_t>(t.data, t.n_bytes)).ok());
      }
    }
    std::vector<size_t> asked;
    const std::string out = temp_path("later.gguf");
    auto written = writer.write(out, [&](size_t i) -> core::Result<std::span<const uint8_t>> {
      asked.push_back(i);
      return std::span<const uint8_t>(tensors[i].data, tensors[i].n_bytes);
    });
    ASSERT_TRUE(written.ok()) << written.message();
    EXPECT_EQ(read_bytes(path), read_bytes(out)) << path;
    for (size_t k = 0; k < asked.size(); ++k) EXPECT_EQ(asked[k], 2 * k);
    EXPECT_EQ(asked.size(), (tensors.size() + 1) / 2);
    fs::remove(out);
    if (tensors.empty()) continue;  // vocabulary-only files

    auto short_data = writer.write(out, [&](size_t i) -> core::Result<std::span<const uint8_t>> {
      return std::span<const uint8_t>(tensors[i].data, tensors[i].n_bytes - 1);
    });
    ASSERT_FALSE(short_data.ok());
    EXPECT_NE(short_data.message().find("bytes given"), std::string::npos) << short_data.message();
    auto failing = writer.write(out, [&](size_t) -> core::Result<std::span<const uint8_t>> { return core::make_error("no bytes"); });
    ASSERT_FALSE(failing.ok());
    EXPECT_EQ(failing.message(), "no bytes");
    EXPECT_FALSE(writer.write(out).ok());
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(GgufWriter, EveryValueTypeRoundTrips) {
  GgufWriter writer;
  writer.set("u8", Value::u8(200));
  writer.set("i8", Value::i8(-100));
  writer.set("u16", Value::u16(60000));
  writer.set("i16", Value::i16(-30000));
  writer.set("u32", Value::u32(4000000000u));
  writer.set("i32", Value::i32(-2000000000));
  writer.set("u64", Value::u64(~uint64_t{0}));
  writer.set("i64", Value::i64(INT64_MIN));
  writer.set("f32", Value::f32(0.1f));
  writer.set("f64", Value::f64(0.1));
  writer.set("bool", Value::boolean(true));
  writer.set("str", Value::string("héllo\n"));
  Array inner{ValueType::F32, {Value::f32(1.5f), Value::f32(-2.0f)}};
  writer.set("nested", Value::array(Array{ValueType::ARRAY, {Value::array(inner), Value::array(Array{ValueType::F32, {}})}}));
  const std::string out = temp_path("values.gguf");
  ASSERT_TRUE(writer.write(out).ok());
  auto file = GgufFile::open(out);
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(*file->get_int("u8"), 200);
  EXPECT_EQ(*file->get_int("i8"), -100);
  EXPECT_EQ(*file->get_int("u16"), 60000);
  EXPECT_EQ(*file->get_int("i16"), -30000);
  EXPECT_EQ(*file->get_int("u32"), 4000000000LL);
  EXPECT_EQ(*file->get_int("i32"), -2000000000);
  EXPECT_EQ(std::get<uint64_t>(file->find("u64")->data), ~uint64_t{0});
  EXPECT_FALSE(file->get_int("u64").ok()) << "u64 beyond int64 must not convert silently";
  EXPECT_EQ(*file->get_int("i64"), INT64_MIN);
  EXPECT_EQ(static_cast<float>(*file->get_float("f32")), 0.1f);
  EXPECT_EQ(*file->get_float("f64"), 0.1);
  EXPECT_TRUE(*file->get_bool("bool"));
  EXPECT_EQ(*file->get_string("str"), "héllo\n");
  const Array* nested = file->find("nested")->as_array();
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->items.size(), 2u);
  EXPECT_EQ(*nested->items[0].as_array()->items[1].as_float(), -2.0);
  EXPECT_TRUE(nested->items[1].as_array()->items.empty());
  fs::remove(out);
}

}  // namespace
}  // namespace owl::gguf
