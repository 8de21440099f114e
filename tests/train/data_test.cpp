// Training examples from JSONL: which tokens carry loss in each format, truncation, line numbers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "template/template.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

namespace {

namespace fs = std::filesystem;
using namespace owl;

const std::string kModel = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";

// chatml, as the models that use it write it.
constexpr const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

class Data : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = tokenizer::Tokenizer::load(kModel);
    ASSERT_TRUE(t) << t.message();
    tok_.emplace(std::move(*t));
    auto c = tmpl::Template::parse(kChatml);
    ASSERT_TRUE(c) << c.message();
    chat_.emplace(std::move(*c));
    path_ = (fs::temp_directory_path() /
             ("owl-train-data-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".jsonl"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  core::Result<train::Dataset> load(const std::string& jsonl, train::DataOptions options = {}) {
    std::ofstream(path_, std::ios::binary) << jsonl;
    chat_asked_ = false;
    return train::load_dataset(
        path_, *tok_,
        [&]() -> core::Result<const tmpl::Template*> {
          chat_asked_ = true;
          return &*chat_;
        },
        options);
  }
  // The text of the tokens that carry loss, EOS left out.
  std::string targets(const train::Example& ex) const {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < ex.tokens.size(); ++i) {
      if (ex.target[i] != 0 && ex.tokens[i] != tok_->eos()) ids.push_back(ex.tokens[i]);
    }
    return tok_->detokenize(ids);
  }
  std::vector<int32_t> ids(const std::string& text, bool bos) const {
    return tok_->tokenize(text, {.add_special = bos, .parse_special = true});
  }

  std::optional<tokenizer::Tokenizer> tok_;
  std::optional<tmpl::Template> chat_;
  std::string path_;
  bool chat_asked_ = false;
};

TEST_F(Data, PromptCompletionLearnsTheCompletionAndEos) {
  auto d = load(R"({"prompt": "Tim had a red ball.\nWhat color was the ball?", "completion": " red\n"})" "\n");
  ASSERT_TRUE(d) << d.message();
  ASSERT_EQ(d->examples.size(), 1u);
  const train::Example& ex = d->examples[0];
  const auto all = ids("Tim had a red ball.\nWhat color was the ball? red\n", true);
  const auto prompt = ids("Tim had a red ball.\nWhat color was the ball?", true);
  ASSERT_EQ(ex.tokens.size(), all.size() + 1);
  EXPECT_EQ(std::vector<int32_t>(ex.tokens.begin(), ex.tokens.end() - 1), all);
  EXPECT_EQ(ex.tokens.back(), tok_->eos());
  for (size_t i = 0; i < ex.tokens.size(); ++i) EXPECT_EQ(ex.target[i], i >= prompt.size() ? 1 : 0) << i;
  EXPECT_EQ(targets(ex), "red\n");  // detokenized alone, the piece loses its leading space
  EXPECT_EQ(ex.n_targets(), static_cast<int64_t>(all.size() - prompt.size() + 1));
  EXPECT_EQ(ex.line, 1);
  EXPECT_EQ(d->n_tokens, static_cast<int64_t>(ex.tokens.size()));
  EXPECT_EQ(d->n_targets, ex.n_targets());
  EXPECT_FALSE(chat_asked_);  // no messages: the template is never needed
}

TEST_F(Data, TrainOnPromptAndTextLearnEveryTokenButBos) {
  const std::string line = R"({"prompt": "Tim had a red ball.", "completion": " It was big."})";
  auto d = load(line + "\n", {.train_on_prompt = true});
  ASSERT_TRUE(d) << d.message();
  const train::Example& a = d->examples[0];
  EXPECT_EQ(a.tokens[0], tok_->bos());
  EXPECT_EQ(a.target[0], 0);
  for (size_t i = 1; i < a.tokens.size(); ++i) EXPECT_EQ(a.target[i], 1) << i;

  auto t = load(R"({"text": "Tim had a red ball. It was big."})" "\n");
  ASSERT_TRUE(t) << t.message();
  EXPECT_EQ(t->examples[0].tokens, a.tokens);
  EXPECT_EQ(t->examples[0].target, a.target);
}

TEST_F(Data, MessagesLearnEachAssistantTurnWithItsEndOfTurn) {
  auto d = load(R"({"messages": [{"role": "system", "content": "Be short."}, {"role": "user", "content": "Hi"},)"
                R"( {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Color?"},)"
                R"( {"role": "assistant", "content": "red"}]})" "\n");
  ASSERT_TRUE(d) << d.message();
  EXPECT_TRUE(chat_asked_);
  const train::Example& ex = d->examples[0];
  const std::string rendered =
      "<|im_start|>system\nBe short.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
      "<|im_start|>user\nColor?<|im_end|>\n<|im_start|>assistant\nred<|im_end|>\n";
  EXPECT_EQ(ex.tokens, ids(rendered, true));
  // The targets, in order: the two answers and what closes each turn, nothing of the rest.
  EXPECT_EQ(targets(ex), "Hello<|im_end|>\nred<|im_end|>\n");
  std::vector<int32_t> first_turn(ex.tokens.begin(),
                                  ex.tokens.begin() + static_cast<std::ptrdiff_t>(ids(
                                      "<|im_start|>system\nBe short.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                      "<|im_start|>assistant\n", true).size()));
  for (size_t i = 0; i < first_turn.size(); ++i) EXPECT_EQ(ex.target[i], 0) << i;
}

TEST_F(Data, LongExamplesAreRefusedOrCutAndCounted) {
  const std::string jsonl = R"({"text": "Once upon a time, there was a little girl named Lily. She loved to play."})" "\n"
                            R"({"text": "Tim ran."})" "\n";
  auto refused = load(jsonl, {.n_ctx = 10});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find(path_ + ":1: the example is"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("longer than --ctx 10"), std::string::npos) << refused.message();

  auto cut = load(jsonl, {.n_ctx = 10, .truncate = true});
  ASSERT_TRUE(cut) << cut.message();
  EXPECT_EQ(cut->n_truncated, 1);
  ASSERT_EQ(cut->examples.size(), 2u);
  EXPECT_EQ(cut->examples[0].tokens.size(), 10u);
  EXPECT_EQ(cut->examples[0].target.size(), 10u);
  EXPECT_EQ(cut->examples[1].line, 2);
}

TEST_F(Data, BlankLinesAreSkippedAndLinesKeepTheirNumbers) {
  auto d = load("\n" R"({"text": "Tim ran."})" "\r\n   \n" R"({"text": "Lily sat."})" "\n");
  ASSERT_TRUE(d) << d.message();
  ASSERT_EQ(d->examples.size(), 2u);
  EXPECT_EQ(d->examples[0].line, 2);
  EXPECT_EQ(d->examples[1].line, 4);

  auto bad = load("\n\n" R"({"text": 5})" "\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.message(), path_ + ":3: 'text' must be a non-empty string");

  auto empty = load("\n \n");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.message(), path_ + ": no examples");
}

}  // namespace
