// Constrained decoding cost: schema compilation, and the time of a token's mask (the sampler's
// constraint step: look up or compute the allowed set, apply it to the logits, advance) over
// whole generated documents, p50 / p99 / max, on the Llama 2 (32k) and GPT-2 (50k) vocabularies.
// "cold": a fresh program (every state's mask computed the first time it is met); "warm": the
// same schema again (as the server keeps compiled programs and their masks). Compilation of the
// first schema on a vocabulary includes the tables of its wide character classes, which the index
// keeps for the later schemas (as the server keeps one index per model).
#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "constrain/json_schema.h"
#include "constrain/matcher.h"

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

const std::pair<const char*, const char*> kSchemas[] = {
    {"nested object", R"({"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string","maxLength":24},
      "age":{"type":"integer","minimum":0,"maximum":130},"email":{"type":"string","format":"email"}},"required":["name","age"]},
      "active":{"type":"boolean"},"score":{"type":"number"}},"required":["user","active"]})"},
    {"enums + array", R"({"type":"object","properties":{"label":{"enum":["positive","negative","neutral"]},
      "confidence":{"type":"integer","minimum":0,"maximum":100},"topics":{"type":"array","items":{"enum":["billing","shipping","quality","other"]},"maxItems":4}},
      "required":["label","confidence","topics"]})"},
    {"patterns + formats", R"({"type":"object","properties":{"id":{"type":"string","pattern":"^[A-Z]{3}-[0-9]{4}$"},
      "date":{"type":"string","format":"date"},"uuid":{"type":"string","format":"uuid"},"ip":{"type":"string","format":"ipv4"}},
      "required":["id","date","uuid","ip"]})"},
    {"recursive tree", R"({"$ref":"#/$defs/n","$defs":{"n":{"type":"object","properties":{"name":{"type":"string","maxLength":10},
      "children":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":3}},"required":["name"]}}})"},
    {"any JSON object", nullptr},
};

struct Stats {
  std::vector<double> us;
  int docs = 0;
};

// Generates documents with random logits (closing characters favoured so they end), timing
// each token's mask + accept.
void generate(const owl::constrain::Program& program, const owl::tokenizer::Tokenizer& tok, int n_docs, uint64_t seed, Stats& st) {
  std::mt19937_64 rng(seed);
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()));
  std::vector<float> bias(logits.size(), 0.0f);
  for (size_t t = 0; t < bias.size(); ++t) {
    if (tok.token_to_piece(static_cast<int32_t>(t)).find_first_of("\"]},") != std::string_view::npos) bias[t] = 6.0f;
  }
  bias[static_cast<size_t>(tok.eos())] = 6.0f;
  std::normal_distribution<float> noise(0.0f, 3.0f);
  for (int d = 0; d < n_docs; ++d) {
    auto c = program.make();
    for (int step = 0; step < 300; ++step) {
      for (size_t t = 0; t < logits.size(); ++t) logits[t] = noise(rng) + bias[t];
      auto t0 = Clock::now();
      c->mask(logits);
      double us = us_since(t0);
      const auto best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      t0 = Clock::now();
      c->accept(best);
      st.us.push_back(us + us_since(t0));
      if (tok.is_eog(best)) break;
    }
    ++st.docs;
  }
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main() {
  fmt::print("| vocabulary | schema | compile (ms) | tokens | cold p50 / p99 / max (µs) | warm p50 / p99 / max (µs) |\n");
  fmt::print("|---|---|---:|---:|---:|---:|\n");
  for (const char* vocab : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    auto tok = owl::tokenizer::Tokenizer::load(std::string(OWL_SHARED_DIR) + "/vocab/" + vocab);
    if (!tok.ok()) {
      fmt::print(stderr, "{}\n", tok.message());
      return 1;
    }
    auto t0 = Clock::now();
    auto index = std::make_shared<const owl::constrain::TokenIndex>(*tok);
    fmt::print("| {} ({} tokens, trie of {} nodes built in {:.1f} ms) | | | | | |\n", vocab, tok->n_vocab(), index->n_nodes(), us_since(t0) / 1000);
    for (const auto& [name, schema] : kSchemas) {
      t0 = Clock::now();
      std::string gbnf = schema ? *owl::constrain::json_schema_to_gbnf(Json::parse(schema)) : owl::constrain::json_object_gbnf();
      auto program = owl::constrain::compile(gbnf, index);
      const double compile_ms = us_since(t0) / 1000;
      if (!program.ok()) {
        fmt::print(stderr, "{}\n", program.message());
        return 1;
      }
      Stats cold, warm;
      generate(**program, *tok, 10, 1, cold);
      generate(**program, *tok, 10, 1, warm);
      fmt::print("| | {} | {:.2f} | {} | {:.1f} / {:.0f} / {:.0f} | {:.1f} / {:.1f} / {:.0f} |\n", name, compile_ms, cold.us.size(),
                 pct(cold.us, 0.5), pct(cold.us, 0.99), pct(cold.us, 1.0), pct(warm.us, 0.5), pct(warm.us, 0.99), pct(warm.us, 1.0));
    }
  }
}
