// Tokenizer throughput: tokenize and detokenize MB/s per vocabulary on a few MB of mixed text,
// generated deterministically from llama.cpp's tokenizer test inputs (../shared/vocab/*.inp),
// repeated with variations (numbers, case, punctuation, separators). Prints figures only.
//
// usage: owl_bench_tokenizer [MB] [SHARED_DIR]   (defaults: 4 MB, the build's ../shared)
// For scale on this kind of machine: llama.cpp's llama-tokenize runs about 1 MB/s on SPM
// vocabularies and 1.7 MB/s on byte-level BPE.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using owl::tokenizer::Detokenizer;
using owl::tokenizer::TokenId;
using owl::tokenizer::Tokenizer;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> read_inputs(const std::string& path) {
  const std::string text = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    if (hit > pos) inputs.push_back(text.substr(pos, hit - pos));
  }
  return inputs;
}

// Mixed text: the test inputs in random order, some with letters upper-cased, numbers and
// punctuation inserted, joined by spaces, newlines and sentence ends.
std::string make_corpus(const std::vector<std::string>& inputs, size_t bytes) {
  std::mt19937_64 rng(20240601);
  const char* separators[] = {" ", "\n", ". ", ", ", "\n\n", " - ", "; "};
  std::string text;
  text.reserve(bytes + 4096);
  while (text.size() < bytes) {
    std::string piece = inputs[rng() % inputs.size()];
    if (rng() % 4 == 0) {
      for (char& c : piece) {
        if (c >= 'a' && c <= 'z' && rng() % 3 == 0) c = static_cast<char>(c - 'a' + 'A');
      }
    }
    text += piece;
    if (rng() % 3 == 0) text += " " + std::to_string(rng() % 100000);
    text += separators[rng() % std::size(separators)];
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void bench(const std::string& name, const std::string& model, const std::string& corpus) {
  auto tok = Tokenizer::load(model);
  if (!tok) {
    std::printf("%-12s %s\n", name.c_str(), tok.message().c_str());
    return;
  }
  const double mb = static_cast<double>(corpus.size()) / 1e6;
  std::vector<TokenId> ids;
  ids.reserve(corpus.size() / 2);
  double cold = 0, best = 1e30;
  for (int run = 0; run < 3; ++run) {
    ids.clear();
    const auto start = std::chrono::steady_clock::now();
    tok->tokenize(corpus, ids, {.add_special = false});
    const double s = seconds_since(start);
    if (run == 0) cold = s;
    best = std::min(best, s);
  }
  // Detokenize: whole sequence, and token by token through the streaming detokenizer.
  std::string text;
  double detok = 1e30, stream = 1e30;
  for (int run = 0; run < 3; ++run) {
    text.clear();
    auto start = std::chrono::steady_clock::now();
    tok->detokenize(ids, text);
    detok = std::min(detok, seconds_since(start));
    start = std::chrono::steady_clock::now();
    Detokenizer d(*tok);
    size_t n = 0;
    for (TokenId id : ids) n += d.push(id).size();
    n += d.finish().size();
    stream = std::min(stream, seconds_since(start));
    if (n == 0) std::printf("(empty)\n");
  }
  std::printf("%-12s %-5s %8.2f MB %9zu tokens  tokenize %7.2f MB/s (first run %6.2f)  detokenize %7.1f MB/s  "
              "stream %7.1f MB/s\n",
              name.c_str(), tok->type() == owl::tokenizer::VocabType::kSpm ? "spm" : "bpe", mb, ids.size(),
              mb / best, mb / cold, mb / detok, mb / stream);
}

}  // namespace

int main(int argc, char** argv) {
  const double megabytes = argc > 1 ? std::atof(argv[1]) : 4.0;
  const std::string shared = argc > 2 ? argv[2] : OWL_SHARED_DIR;
  const size_t bytes = static_cast<size_t>(megabytes * 1e6);
  for (const std::string name : {"llama-spm", "phi-3", "gpt-2"}) {
    const std::string model = shared + "/vocab/ggml-vocab-" + name + ".gguf";
    bench(name, model, make_corpus(read_inputs(model + ".inp"), bytes));
  }
  bench("stories260K", shared + "/models/stories260K.gguf",
        make_corpus(read_inputs(shared + "/vocab/ggml-vocab-llama-spm.gguf.inp"), bytes));
  return 0;
}
