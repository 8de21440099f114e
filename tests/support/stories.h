// The embedded model, loaded once per test binary.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace owl::testing {

struct Loaded {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
};

inline const Loaded& stories() {
  static const Loaded loaded = [] {
    Loaded l;
    auto m = model::load_model(std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf");
    if (!m) throw std::runtime_error(m.message());
    l.model = std::move(*m);
    auto t = tokenizer::Tokenizer::load(l.model->file);
    if (!t) throw std::runtime_error(t.message());
    l.tokenizer = std::make_unique<tokenizer::Tokenizer>(std::move(*t));
    return l;
  }();
  return loaded;
}

}  // namespace owl::testing
