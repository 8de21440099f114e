// owl tokenize -m MODEL [-p TEXT | -f FILE | < FILE] [--no-bos] [--parse-special] [--pieces]:
// the token ids of a text with the model's own tokenizer, as llama.cpp's llama-tokenize gives them.
#include "commands.h"
#include "common_options.h"
#include "prompt_input.h"
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
  bool prompt_given = false;
};

// Length of the well-formed UTF-8 character at the start of `s` (0 when malformed or cut short).
size_t utf8_char_len(std::string_view s) {
  const auto b = static_cast<unsigned char>(s[0]);
  const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// A piece for the terminal: printable text as is; control characters and bytes that are not a
// whole UTF-8 character (a piece can hold part of one) escaped.
std::string escape_piece(std::string_view piece) {
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    const char c = piece[i];
    const auto b = static_cast<unsigned char>(c);
    const size_t n = utf8_char_len(piece.substr(i));
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (b < 0x20 || b == 0x7F || n == 0) {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out.append(piece.substr(i, n));
      i += n;
      continue;
    }
    ++i;
  }
  return out;
}

int run_tokenize(const TokenizeCliOptions& options) {
  auto source = read_text_source({.text = options.prompt_given ? &options.prompt : nullptr, .file = options.file});
  if (!source) return fail("owl tokenize", source.message());
  const std::string& text = *source;
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
  auto* file = app->add_option("-f,--file", options->file,
                               "File whose bytes are tokenized exactly (-: standard input, also read when piped "
                               "and neither -p nor -f is given)");
  prompt->excludes(file);
  file->excludes(prompt);
  app->add_flag("--no-bos", options->no_bos, "Do not add BOS/EOS even where the model asks for them");
  app->add_flag("--parse-special", options->parse_special, "Turn control tokens written in the text into their ids");
  app->add_flag("--pieces", options->pieces, "Print one token per line: id and piece");
  return {app, [options, app] {
            options->prompt_given = app->count("--prompt") > 0;
            return run_tokenize(*options);
          }};
}

}  // namespace owl::cli
