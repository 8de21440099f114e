// Token masks from the trie walk against the definition (each token's bytes fed to a copy of
// the matcher), on real vocabularies; and whole generations under a mask.
#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "constrain/json_schema.h"
#include "constrain/matcher.h"
#include "sample/sampler.h"

namespace owl::constrain {
namespace {

using Json = nlohmann::ordered_json;

const tokenizer::Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, tokenizer::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto tok = tokenizer::Tokenizer::load(std::string(OWL_SHARED_DIR) + "/vocab/" + name);
    if (!tok.ok()) {
      ADD_FAILURE() << tok.message();
      std::abort();
    }
    it = cache.emplace(name, std::move(*tok)).first;
  }
  return it->second;
}

const char* kSchema = R"({"type":"object","properties":{
  "name":{"type":"string","maxLength":12},
  "kind":{"enum":["cat","dog","owl"]},
  "age":{"type":"integer","minimum":0,"maximum":150},
  "tags":{"type":"array","items":{"type":"string","pattern":"^[a-z]+$"},"maxItems":3},
  "note":{"type":["string","null"]},
  "born":{"type":"string","format":"date"}},
  "required":["name","kind"]})";

std::vector<uint64_t> brute_force(const Matcher& at, const TokenIndex& index) {
  std::vector<uint64_t> mask((static_cast<size_t>(index.n_vocab()) + 63) / 64, 0);
  for (int32_t t = 0; t < index.n_vocab(); ++t) {
    bool ok = false;
    if (index.is_eog(t)) {
      ok = at.accepted();
    } else if (!index.piece(t).empty()) {
      Matcher m = at;
      ok = m.feed(index.piece(t));
    }
    if (ok) mask[static_cast<size_t>(t) >> 6] |= 1ull << (t & 63);
  }
  return mask;
}

class Masks : public ::testing::TestWithParam<const char*> {};

TEST_P(Masks, TrieWalkEqualsFeedingEveryToken) {
  const tokenizer::Tokenizer& tok = vocab(GetParam());
  TokenIndex index(tok);
  auto gbnf = json_schema_to_gbnf(Json::parse(kSchema));
  ASSERT_TRUE(gbnf.ok()) << gbnf.message();
  auto grammar = Grammar::parse(*gbnf);
  ASSERT_TRUE(grammar.ok()) << grammar.message();
  // States along a valid document, a partial character included.
  const std::string fixed = "{\"name\": \"Zoé\", \"kind\": \"owl\", \"age\": 42, \"tags\": [\"ab\", \"c\"], \"note\": null, "
                            "\"born\": \"2020-02-28\"}";
  Matcher m(*grammar);
  std::vector<uint64_t> walked;
  size_t checked = 0;
  for (size_t i = 0; i <= fixed.size(); ++i) {
    if (i % 3 == 0 || i + 1 >= fixed.size() || static_cast<uint8_t>(fixed[i - (i ? 1 : 0)]) >= 0x80) {  // every third, and inside é
      const std::vector<uint64_t> expected = brute_force(m, index);
      for (Matcher::Walk walk : {Matcher::Walk::kEveryNode, Matcher::Walk::kSkipRuns}) {
        Matcher probe = m;
        probe.compute_mask(index, walked, walk);
        ASSERT_EQ(walked, expected) << "after " << fixed.substr(0, i) << (walk == Matcher::Walk::kSkipRuns ? " (runs)" : "");
      }
      ++checked;
    }
    if (i < fixed.size()) {
      ASSERT_TRUE(m.feed(fixed.substr(i, 1))) << fixed.substr(0, i + 1);
    }
  }
  EXPECT_TRUE(m.accepted());
  EXPECT_GT(checked, 20u);
}

// Grammars whose masks lean on runs of one class: JSON strings bounded and not, keys of any name,
// formats, numbers, patterns with classes that hold only some continuations of a partial UTF-8
// character, a run whose sets stop taking its class uniformly ([a-z]{3} then [a-m]*), and one
// whose class overlaps another's.
std::vector<std::string> run_grammars() {
  std::vector<std::string> out;
  for (const char* schema : {
           kSchema,
           R"({"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string","maxLength":24},
             "age":{"type":"integer","minimum":0,"maximum":130},"email":{"type":"string","format":"email"}},"required":["name","age"]},
             "score":{"type":"number"},"s":{"type":"string","minLength":3,"maxLength":30}},"required":["user","s"]})",
           R"({"type":"object","properties":{"w":{"type":"string","pattern":"^[a-zé]{2,5}è$"},"x":{"type":"string","pattern":"^[^é]+$"},
             "id":{"type":"string","pattern":"^[A-Z]{3}-[0-9]{4}$"}},"required":["w","x","id"]})",
       }) {
    auto gbnf = json_schema_to_gbnf(Json::parse(schema));
    EXPECT_TRUE(gbnf.ok()) << gbnf.message();
    out.push_back(*gbnf);
  }
  out.push_back(json_object_gbnf());
  out.push_back("root ::= [a-z]{3} [a-m]* \"!\" [^\"]{0,12} \"\\\"\" [à-ÿ]+ \",\" ( [a-zA-Z0-9-]{0,9} [a-zA-Z0-9] \".\" )+ \"}\"\n");
  return out;
}

// Generates documents under the mask (random logits plus `bias`) and checks every state on the
// way: the mask that skips runs equals the walk through every node, and so does the program's
// cached mask (the first document computes it, the next ones look it up); every
// `brute_every`-th state, both equal feeding every token. Counts the states, and those inside a
// character.
void check_generated_states(const TokenIndex& index, const std::shared_ptr<const Program>& program, const std::vector<float>& bias,
                            int docs, int steps, size_t brute_every, std::mt19937& rng, size_t& states, size_t& partial) {
  std::normal_distribution<float> noise(0.0f, 2.0f);
  std::vector<float> logits(bias.size());
  std::vector<uint64_t> skipped, full;
  for (int doc = 0; doc < docs; ++doc) {
    auto constraint = program->make();
    auto& c = static_cast<GrammarConstraint&>(*constraint);
    std::string text;
    for (int step = 0; step < steps && c.matcher().alive(); ++step, ++states) {
      Matcher probe = c.matcher();
      probe.compute_mask(index, full, Matcher::Walk::kEveryNode);
      probe = c.matcher();
      probe.compute_mask(index, skipped, Matcher::Walk::kSkipRuns);
      ASSERT_EQ(skipped, full) << "after " << text;
      ASSERT_EQ(*c.allowed(), full) << "after " << text;
      if (states % brute_every == 0) {
        ASSERT_EQ(full, brute_force(c.matcher(), index)) << "after " << text;
      }
      partial += c.matcher().utf8().need != 0;
      for (size_t t = 0; t < logits.size(); ++t) logits[t] = noise(rng) + bias[t];
      c.mask(logits);
      const auto best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      c.accept(best);
      if (index.is_eog(best)) break;
      text += index.piece(best);
    }
  }
}

// Favours tokens that close strings and objects (so that documents move on), non-ASCII ones,
// and those that end inside a character.
std::vector<float> generation_bias(const TokenIndex& index, int32_t eos) {
  std::vector<float> bias(static_cast<size_t>(index.n_vocab()), 0.0f);
  auto any = Grammar::parse("root ::= .*\n");
  for (int32_t t = 0; t < index.n_vocab(); ++t) {
    const std::string_view p = index.piece(t);
    if (p.find_first_of("\"]},") != std::string_view::npos) bias[static_cast<size_t>(t)] += 3.0f;
    if (std::any_of(p.begin(), p.end(), [](char c) { return static_cast<uint8_t>(c) >= 0x80; })) bias[static_cast<size_t>(t)] += 1.5f;
    Matcher m(*any);
    if (m.feed(p) && !m.accepted()) bias[static_cast<size_t>(t)] += 1.5f;
  }
  bias[static_cast<size_t>(eos)] += 3.0f;
  return bias;
}

TEST_P(Masks, SkippingRunsEqualsTheFullWalk) {
  const tokenizer::Tokenizer& tok = vocab(GetParam());
  auto index = std::make_shared<const TokenIndex>(tok);
  const std::vector<float> bias = generation_bias(*index, tok.eos());
  std::mt19937 rng(5);
  size_t states = 0, partial = 0;
  for (const std::string& gbnf : run_grammars()) {
    auto program = compile(gbnf, index);
    ASSERT_TRUE(program.ok()) << program.message();
    ASSERT_NO_FATAL_FAILURE(check_generated_states(*index, *program, bias, 3, 60, 24, rng, states, partial)) << gbnf;
  }
  EXPECT_GT(states, 400u);
  EXPECT_GT(partial, 2u);
}

// A made-up vocabulary of short pieces built from the characters runs turn on: letters inside and
// outside the classes, a lead byte alone (a character its token leaves partial), continuation
// bytes, the lead byte of surrogates, quotes, backslashes, digits. Small enough to check every
// state against feeding every token, and full of the tokens real vocabularies have few of:
// "abcd\xC3" ends a run of four with a character that may or may not continue it.
tokenizer::Tokenizer edge_vocabulary() {
  tokenizer::VocabSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.token_types = {2, 3, 3};
  spec.unk = 0;
  spec.bos = 1;
  spec.eos = 2;
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    spec.token_types.push_back(6);
  }
  const char* fragments[] = {"a", "b", "m", "z", "A", "Z", "0", "7", "-", ".", "@", " ", "\"", "\\", ",", "}", ":", "!",
                             "é", "è", "ÿ", "€", "\xC3", "\xA9", "\xE2\x82", "\xED", "\xED\x9F", "\n", "😀", "\xF0\x9F"};
  std::mt19937 rng(3);
  std::set<std::string> pieces;
  while (pieces.size() < 4000) {
    std::string p;
    const size_t n = 1 + rng() % (rng() % 4 == 0 ? 12 : 5);
    // Runs of one fragment as well as mixes, as real vocabularies have ("----", "aaaa").
    const char* same = rng() % 3 == 0 ? fragments[rng() % std::size(fragments)] : nullptr;
    for (size_t i = 0; i < n; ++i) p += same ? same : fragments[rng() % std::size(fragments)];
    pieces.insert(p);
  }
  for (const char* p : {"a\xC3", "z\xC3", "\xC3\xA9\xC3", "z\xC3\xA9\xC3", "z\xC3\xA9m\xC3", "ab", "\xC3\xA8!"}) pieces.insert(p);
  for (const std::string& p : pieces) {
    spec.tokens.push_back(p);
    spec.token_types.push_back(1);
  }
  spec.scores.assign(spec.tokens.size(), 0.0f);
  auto tok = tokenizer::Tokenizer::make(std::move(spec));
  if (!tok.ok()) {
    ADD_FAILURE() << tok.message();
    std::abort();
  }
  return std::move(*tok);
}

TEST(Masks, SkippingRunsEqualsFeedingEveryTokenOnEdgeCases) {
  const tokenizer::Tokenizer tok = edge_vocabulary();
  auto index = std::make_shared<const TokenIndex>(tok);
  const std::vector<float> bias = generation_bias(*index, tok.eos());
  std::vector<std::string> grammars = run_grammars();
  for (const char* g : {
           "root ::= [a-zé]{2,4} \"è\" \"!\"\n",             // a run that ends exactly, then a character sharing its lead byte
           "root ::= [a-zé]* ([è0-9] | \"\\\\\") \"!\"\n",     // unbounded
           "root ::= [^\"\\\\]{0,6} [a-z]* \"\\\"\"\n",       // a bounded run, then an overlapping class
           "root ::= ( [a-z] | [\\u00e0-\\u00ff] [a-m] ){1,5} \"!\"\n",
           "root ::= [\\x20-\\U0010ffff]{3} [a-z-]{0,8} [a-z] \"@\" [\\u0080-\\ud7ff]+ \"!\"\n",
           "root ::= ( [a-zé]? ){0,70} \"!\"\n",  // sets of more than 64 stacks
           // More than 16 ways a character can lead on from one set.
           "root ::= ( \"a\" [0-9] | \"b\" | \"m\" \"a\" | \"z\" | \"A\" | \"Z\" | \"0\" \"7\" | \"-\" | \".\" | \"@\" | \" \" | \"é\" | \"è\" | \"ÿ\" "
           "| \"€\" | \"😀\" | \",\" | \":\" )+ \"}\"\n",
       }) {
    grammars.push_back(g);
  }
  // The run of [a-zé] ends exactly after four characters, where "è" (the same lead byte as é)
  // follows: after "ab", "zé\xC3" is allowed ("\xC3" may become è) and "zém\xC3" is not.
  auto exact = Grammar::parse(grammars[run_grammars().size()]);
  ASSERT_TRUE(exact.ok());
  for (const char* prefix : {"", "a", "ab", "abé", "abém"}) {
    Matcher m(*exact);
    ASSERT_TRUE(m.feed(prefix));
    std::vector<uint64_t> skipped;
    m.compute_mask(*index, skipped, Matcher::Walk::kSkipRuns);
    EXPECT_EQ(skipped, brute_force(m, *index)) << "after " << prefix;
  }
  std::mt19937 rng(9);
  size_t states = 0, partial = 0;
  for (const std::string& gbnf : grammars) {
    auto program = compile(gbnf, index);
    ASSERT_TRUE(program.ok()) << program.message() << "\n" << gbnf;
    ASSERT_NO_FATAL_FAILURE(check_generated_states(*index, *program, bias, 6, 40, 2, rng, states, partial)) << gbnf;
  }
  EXPECT_GT(states, 1200u);
  EXPECT_GT(partial, 50u);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, Masks,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-phi-3.gguf"));

// Random logits through the sampler with the constraint: every generation that ends is a
// document the grammar accepts, and it ends only by an end-of-generation token once complete.
TEST(Masks, SampledGenerationsAreValidDocuments) {
  const tokenizer::Tokenizer& tok = vocab("ggml-vocab-llama-spm.gguf");
  auto index = std::make_shared<const TokenIndex>(tok);
  auto gbnf = json_schema_to_gbnf(Json::parse(kSchema));
  ASSERT_TRUE(gbnf.ok());
  auto program = compile(*gbnf, index);
  ASSERT_TRUE(program.ok()) << program.message();
  std::mt19937 rng(7);
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()));
  int finished = 0;
  for (int run = 0; run < 20; ++run) {
    sample::SamplingParams params;
    params.temperature = 1.0f;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    params.seed = static_cast<uint64_t>(run);
    sample::Sampler sampler(params, tok.n_vocab(), (*program)->make());
    std::string text;
    bool ended = false;
    for (int step = 0; step < 400 && !ended; ++step) {
      std::normal_distribution<float> noise(0.0f, 3.0f);
      for (size_t t = 0; t < logits.size(); ++t) {
        logits[t] = noise(rng);
        const std::string_view p = tok.token_to_piece(static_cast<int32_t>(t));
        // Favour closing characters so documents end within the budget.
        if (p.find_first_of("\"]},") != std::string_view::npos) logits[t] += 8.0f;
      }
      logits[static_cast<size_t>(tok.eos())] += 8.0f;
      const sample::Sampled s = sampler.sample(logits.data());
      sampler.accept(s.token);
      if (tok.is_eog(s.token)) {
        ended = true;
      } else {
        text += tok.token_to_piece(s.token);
      }
    }
    if (!ended) continue;
    ++finished;
    const Json doc = Json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << text;
    ASSERT_TRUE(doc.is_object()) << text;
    EXPECT_TRUE(doc.contains("name") && doc["name"].is_string()) << text;
    EXPECT_TRUE(doc["kind"] == "cat" || doc["kind"] == "dog" || doc["kind"] == "owl") << text;
    if (doc.contains("age")) {
      EXPECT_TRUE(doc["age"].is_number_integer() && doc["age"] >= 0 && doc["age"] <= 150) << text;
    }
    if (doc.contains("tags")) {
      EXPECT_LE(doc["tags"].size(), 3u) << text;
    }
  }
  EXPECT_GE(finished, 15);
}

TEST(Masks, OnlyTheEndOnceTheDocumentIsComplete) {
  const tokenizer::Tokenizer& tok = vocab("ggml-vocab-llama-spm.gguf");
  auto program = compile("root ::= \"yes\" | \"no\"\n", std::make_shared<const TokenIndex>(tok));
  ASSERT_TRUE(program.ok());
  auto c = (*program)->make();
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()), 0.0f);
  c->mask(logits);
  EXPECT_TRUE(std::isinf(logits[static_cast<size_t>(tok.eos())]));  // nothing written yet
  const int32_t yes = tok.find_token("yes");
  ASSERT_GE(yes, 0);
  EXPECT_EQ(logits[static_cast<size_t>(yes)], 0.0f);
  c->accept(yes);
  std::fill(logits.begin(), logits.end(), 0.0f);
  c->mask(logits);
  size_t allowed = 0;
  for (float l : logits) allowed += l == 0.0f;
  EXPECT_EQ(logits[static_cast<size_t>(tok.eos())], 0.0f);
  EXPECT_EQ(allowed, 1u);
}

}  // namespace
}  // namespace owl::constrain
