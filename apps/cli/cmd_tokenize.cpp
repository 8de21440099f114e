// owl tokenize -m MODEL [-p TEXT | -f FILE] [--no-bos] [--parse-special] [--pieces]:
// the token ids of a text with the model's own tokenizer, as llama.cpp's llama-tokenize gives them.
#include <fstream>
#include <iterator>

#include "commands.h"
#include "tokenizer/tokenizer.h"

namespace owl::cli {
namespace {

struct TokenizeCliOptions {
  std::string model;
  std::string prompt;
  std::string file;
  bool no_bos = false;
  bool parse_special = false;
  bool pieces = false;
};

// A piece for the terminal: printable ASCII and UTF-8 as is, other bytes escaped.
std::string escape_piece(std::string_view piece) {
  std::string out;
  for (char c : piece) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (b < 0x20 || b == 0x7F) {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

int run_tokenize(const TokenizeCliOptions& options) {
  std::string text = options.prompt;
  if (!options.file.empty()) {
    std::ifstream in(options.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "owl tokenize: cannot open {}\n", options.file);
      return 1;
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
      fmt::print(stderr, "owl tokenize: cannot read {}\n", options.file);
      return 1;
    }
  }
  auto tok = tokenizer::Tokenizer::load(options.model);
  if (!tok) {
    fmt::print(stderr, "owl tokenize: {}\n", tok.message());
    return 1;
  }
  const std::vector<tokenizer::TokenId> ids =
      tok->tokenize(text, {.add_special = !options.no_bos, .parse_special = options.parse_special});
  if (options.pieces) {
    for (tokenizer::TokenId id : ids) fmt::print("{:>7} '{}'\n", id, escape_piece(tok->token_to_piece(id, true)));
    return 0;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  fmt::print("{}\n", line);
  return 0;
}

}  // namespace

Command register_tokenize(CLI::App& root) {
  auto options = std::make_shared<TokenizeCliOptions>();
  CLI::App* app = root.add_subcommand("tokenize", "Print the token ids of a text with a model's tokenizer");
  app->add_option("-m,--model", options->model, "GGUF model (or vocab-only) file")->required();
  auto* prompt = app->add_option("-p,--prompt", options->prompt, "Text to tokenize");
  auto* file = app->add_option("-f,--file", options->file, "File whose bytes are tokenized exactly");
  prompt->excludes(file);
  file->excludes(prompt);
  app->add_flag("--no-bos", options->no_bos, "Do not add BOS/EOS even where the model asks for them");
  app->add_flag("--parse-special", options->parse_special, "Turn control tokens written in the text into their ids");
  app->add_flag("--pieces", options->pieces, "Print one token per line: id and piece");
  return {app, [options] { return run_tokenize(*options); }};
}

}  // namespace owl::cli
