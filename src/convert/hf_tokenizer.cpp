// tokenizer.json <-> GGUF tokenizer metadata; see hf_tokenizer.h.
#include "convert/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "gguf/keys.h"

namespace owl::convert::detail {

namespace keys = gguf::keys;

using core::make_error;
using nlohmann::json;

namespace {

// GGUF token types (llama.cpp's llama_token_type).
enum : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

core::Result<json> read_json(const std::string& path) {
  auto text = core::read_file(path);
  if (!text) return text.error();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("{}: not valid JSON", path);
  return j;
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.rfind("<0x", 0) == 0 && t.back() == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

// The name llama.cpp gives the pre-tokenizer, recognised from its regexes.
std::string detect_pre(const json& tok) {
  const std::string dump = tok.contains("pre_tokenizer") ? tok["pre_tokenizer"].dump() : "";
  if (dump.find("\\\\p{N}{1,3}") != std::string::npos) return "llama-bpe";
  if (dump.find("\\\\p{N}|") != std::string::npos || dump.find("\\\\p{N}| ?") != std::string::npos) return "qwen2";
  if (dump.find("ByteLevel") != std::string::npos) return "gpt-2";
  return "default";
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string special_text(const json& config, const char* key) {
  if (!config.contains(key)) return {};
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

gguf::Value string_array(const std::vector<std::string>& v) {
  gguf::Array a{gguf::ValueType::STRING, {}};
  for (const std::string& s : v) a.items.push_back(gguf::Value::string(s));
  return gguf::Value::array(std::move(a));
}

std::vector<std::string> merges_of(const json& model) {
  std::vector<std::string> merges;
  if (!model.contains("merges") || !model["merges"].is_array()) return merges;
  for (const json& m : model["merges"]) {
    if (m.is_string()) merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  return merges;
}

void add_chat_templates(const std::string& dir, const json& config, std::vector<gguf::MetadataEntry>& out) {
  std::string tmpl;
  if (auto file = core::read_file(dir + "/chat_template.jinja")) tmpl = *file;
  if (tmpl.empty() && config.contains("chat_template")) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      tmpl = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& e : t) {
        if (!e.is_object() || !e.contains("name") || !e.contains("template")) continue;
        const std::string name = e["name"].get<std::string>();
        if (name == "default") tmpl = e["template"].get<std::string>();
        else out.push_back({std::string(keys::kTokenizerChatTemplate) + "." + name,
                            gguf::Value::string(e["template"].get<std::string>())});
      }
    }
  }
  if (!tmpl.empty()) out.push_back({keys::kTokenizerChatTemplate, gguf::Value::string(tmpl)});
}

}  // namespace

core::Result<std::vector<gguf::MetadataEntry>> read_hf_tokenizer(const std::string& dir, int64_t config_bos,
                                                                 int64_t config_eos, HfTokenizerInfo* info) try {
  auto tok = read_json(dir + "/tokenizer.json");
  if (!tok) return tok.error();
  json config = json::object();
  if (std::filesystem::exists(dir + "/tokenizer_config.json")) {
    auto c = read_json(dir + "/tokenizer_config.json");
    if (!c) return c.error();
    config = std::move(*c);
  }
  const json& model = (*tok)["model"];
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object()) {
    return make_error("{}/tokenizer.json: model type '{}' is not supported (BPE only)", dir,
                      model.is_object() ? model.value("type", "?") : "?");
  }
  // id -> text, with added tokens (which may extend the vocabulary).
  std::map<int64_t, std::string> by_id;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) by_id[it.value().get<int64_t>()] = it.key();
  std::unordered_map<int64_t, bool> added_special;
  if (tok->contains("added_tokens") && (*tok)["added_tokens"].is_array()) {
    for (const json& a : (*tok)["added_tokens"]) {
      const int64_t id = a.at("id").get<int64_t>();
      by_id[id] = a.at("content").get<std::string>();
      added_special[id] = a.value("special", false);
    }
  }
  const int64_t n_vocab = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  if (n_vocab == 0 || static_cast<int64_t>(by_id.size()) != n_vocab || by_id.begin()->first != 0) {
    return make_error("{}/tokenizer.json: token ids are not 0..{} without gaps", dir, n_vocab - 1);
  }
  const bool spm = model.value("byte_fallback", false);
  const std::vector<std::string> merges = merges_of(model);
  // SentencePiece scores: exact when owl exported them (gguf_scores), else from the merge ranks
  // (HF builds the merges of such models in score order): a piece scores minus the rank of its
  // first merge; pieces no merge makes (single characters) score below every merge.
  std::vector<float> given_scores;
  if (config.contains("gguf_scores") && config["gguf_scores"].is_array()) {
    given_scores = config["gguf_scores"].get<std::vector<float>>();
  }
  std::unordered_map<std::string, size_t> merge_rank;
  for (size_t r = 0; r < merges.size(); ++r) {
    const size_t space = merges[r].find(' ');
    if (space == std::string::npos) continue;
    merge_rank.emplace(merges[r].substr(0, space) + merges[r].substr(space + 1), r);
  }
  std::vector<std::string> tokens;
  std::vector<gguf::Value> scores, types;
  for (const auto& [id, text] : by_id) {
    tokens.push_back(text);
    int32_t type = kNormal;
    if (auto a = added_special.find(id); a != added_special.end()) type = a->second ? kControl : kUserDefined;
    if (spm && text == model.value("unk_token", "<unk>")) type = kUnknown;
    if (spm && is_byte_token(text) && type == kNormal) type = kByte;
    types.push_back(gguf::Value::i32(type));
    float score = 0.0f;
    if (static_cast<int64_t>(given_scores.size()) == n_vocab) {
      score = given_scores[static_cast<size_t>(id)];
    } else if (type == kNormal) {
      auto r = merge_rank.find(text);
      score = -static_cast<float>(r != merge_rank.end() ? r->second : merges.size() + static_cast<size_t>(id));
    }
    scores.push_back(gguf::Value::f32(score));
  }
  auto find = [&](const std::string& text) -> int64_t {
    if (text.empty()) return -1;
    for (const auto& [id, t] : by_id) {
      if (t == text) return id;
    }
    return -1;
  };
  std::vector<gguf::MetadataEntry> out;
  out.push_back({keys::kTokenizerModel, gguf::Value::string(spm ? "llama" : "gpt2")});
  const std::string pre = spm ? "default" : config.value("gguf_pre", detect_pre(*tok));
  out.push_back({keys::kTokenizerPre, gguf::Value::string(pre)});
  out.push_back({keys::kTokenizerTokens, string_array(tokens)});
  if (spm) out.push_back({keys::kTokenizerScores, gguf::Value::array({gguf::ValueType::F32, std::move(scores)})});
  out.push_back({keys::kTokenizerTokenType, gguf::Value::array({gguf::ValueType::I32, std::move(types)})});
  if (!spm) out.push_back({keys::kTokenizerMerges, string_array(merges)});
  const int64_t bos = std::max(find(special_text(config, "bos_token")), config_bos);
  const int64_t eos = std::max(find(special_text(config, "eos_token")), config_eos);
  const int64_t unk = find(special_text(config, "unk_token").empty() && spm ? std::string("<unk>")
                                                                            : special_text(config, "unk_token"));
  const int64_t pad = find(special_text(config, "pad_token"));
  if (bos >= 0) out.push_back({keys::kTokenizerBosId, gguf::Value::u32(static_cast<uint32_t>(bos))});
  if (eos >= 0) out.push_back({keys::kTokenizerEosId, gguf::Value::u32(static_cast<uint32_t>(eos))});
  if (unk >= 0) out.push_back({keys::kTokenizerUnknownId, gguf::Value::u32(static_cast<uint32_t>(unk))});
  if (pad >= 0) out.push_back({keys::kTokenizerPaddingId, gguf::Value::u32(static_cast<uint32_t>(pad))});
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) {
    out.push_back({keys::kTokenizerAddBos, gguf::Value::boolean(config["add_bos_token"].get<bool>())});
  }
  if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean()) {
    out.push_back({keys::kTokenizerAddEos, gguf::Value::boolean(config["add_eos_token"].get<bool>())});
  }
  add_chat_templates(dir, config, out);
  if (info) {
    info->model = spm ? "llama" : "gpt2";
    info->pre = pre;
    info->n_vocab = n_vocab;
    info->chat_template =
        std::any_of(out.begin(), out.end(), [](const auto& e) { return e.key == keys::kTokenizerChatTemplate; });
  }
  return out;
} catch (const json::exception& e) {
  return make_error("{}: tokenizer files: unexpected JSON structure: {}", dir, e.what());
}

namespace {

// SentencePiece BPE merges from scores: every split of a piece into two pieces of the
// vocabulary, ordered by the merged piece's score (highest first), then by the pieces' ids.
std::vector<std::string> merges_from_scores(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                                            const std::vector<int64_t>& types) {
  std::unordered_map<std::string, int64_t> id_of;
  for (size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], static_cast<int64_t>(i));
  struct Merge {
    double score;
    int64_t left, right;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] != kNormal) continue;
    const std::string& t = tokens[i];
    for (size_t cut = 1; cut < t.size(); ++cut) {
      if ((static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      auto l = id_of.find(t.substr(0, cut));
      auto r = id_of.find(t.substr(cut));
      if (l != id_of.end() && r != id_of.end()) merges.push_back({scores[i], l->second, r->second});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    return std::make_pair(a.left, a.right) < std::make_pair(b.left, b.right);
  });
  std::vector<std::string> out;
  for (const Merge& m : merges) out.push_back(tokens[m.left] + " " + tokens[m.right]);
  return out;
}

}  // namespace

core::Status write_hf_tokenizer(const gguf::GgufFile& file, const std::string& dir) try {
  auto model = file.get_string(keys::kTokenizerModel);
  if (!model) return model.error();
  if (*model != "llama" && *model != "gpt2") {
    return make_error("export: tokenizer.ggml.model '{}' is not supported (llama, gpt2)", *model);
  }
  auto tokens = file.get_string_array(keys::kTokenizerTokens);
  if (!tokens) return tokens.error();
  std::vector<int64_t> types(tokens->size(), kNormal);
  if (file.find(keys::kTokenizerTokenType)) {
    auto t = file.get_int_array(keys::kTokenizerTokenType);
    if (!t) return t.error();
    if (t->size() == types.size()) types = *t;
  }
  const bool spm = *model == "llama";
  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < tokens->size(); ++i) {
    vocab[(*tokens)[i]] = i;
    if (types[i] == kControl || types[i] == kUserDefined || (spm && types[i] == kUnknown)) {
      added.push_back({{"id", i}, {"content", (*tokens)[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", types[i] == kUserDefined}, {"special", types[i] != kUserDefined}});
    }
  }
  std::vector<std::string> merges;
  std::vector<double> gguf_scores;
  if (spm) {
    std::vector<double> scores(tokens->size(), 0.0);
    if (file.find(keys::kTokenizerScores)) {
      auto s = file.get_float_array(keys::kTokenizerScores);
      if (!s) return s.error();
      if (s->size() == scores.size()) scores = *s;
    }
    merges = merges_from_scores(*tokens, scores, types);
    gguf_scores = std::move(scores);
  } else {
    auto m = file.get_string_array(keys::kTokenizerMerges);
    if (!m) return m.error();
    merges = *m;
  }
  nlohmann::ordered_json tok;
  tok["version"] = "1.0";
  tok["added_tokens"] = added;
  if (spm) {
    tok["normalizer"] = {{"type", "Sequence"},
                         {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
    tok["pre_tokenizer"] = nullptr;
    tok["decoder"] = {{"type", "Sequence"},
                      {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                    {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  } else {
    tok["normalizer"] = nullptr;
    tok["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  }
  tok["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", spm ? json("<unk>") : json(nullptr)},
                  {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", spm},
                  {"byte_fallback", spm}, {"vocab", vocab}, {"merges", merges}};
  nlohmann::ordered_json config;
  auto token_text = [&](const char* key) -> json {
    auto id = file.get_int_or(key, -1);
    if (!id || *id < 0 || *id >= static_cast<int64_t>(tokens->size())) return nullptr;
    return (*tokens)[static_cast<size_t>(*id)];
  };
  config["tokenizer_class"] = spm ? "LlamaTokenizer" : "PreTrainedTokenizerFast";
  config["bos_token"] = token_text(keys::kTokenizerBosId);
  config["eos_token"] = token_text(keys::kTokenizerEosId);
  config["unk_token"] = token_text(keys::kTokenizerUnknownId);
  config["pad_token"] = token_text(keys::kTokenizerPaddingId);
  auto add_bos = file.get_bool_or(keys::kTokenizerAddBos, spm);
  config["add_bos_token"] = add_bos.ok() ? *add_bos : spm;
  auto add_eos = file.get_bool_or(keys::kTokenizerAddEos, false);
  config["add_eos_token"] = add_eos.ok() && *add_eos;
  // Exact SentencePiece scores for owl import (merges alone cannot carry ties such as Llama's
  // -1e9 whitespace pieces).
  if (spm) config["gguf_scores"] = gguf_scores;
  if (!spm) config["gguf_pre"] = *file.get_string_or(keys::kTokenizerPre, "default");
  if (auto t = file.get_string(keys::kTokenizerChatTemplate)) config["chat_template"] = *t;
  config["model_max_length"] = 1000000;
  for (const auto& [name, j] : {std::pair{"tokenizer.json", tok.dump(2)}, std::pair{"tokenizer_config.json", config.dump(2)}}) {
    auto f = core::AtomicFile::create(dir + "/" + name);
    if (!f) return f.error();
    OWL_TRY(f->write(j));
    OWL_TRY(f->commit());
  }
  return {};
} catch (const nlohmann::json::exception& e) {
  return make_error("export: {}: tokenizer: {}", dir, e.what());
}

}  // namespace owl::convert::detail
