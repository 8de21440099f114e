// owl: the command-line entry point. Parsing and printing only; the work is in src/.
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands.h"

namespace {

// llama.cpp's multi-letter single-dash options, which CLI11 cannot declare, as their long names.
constexpr std::pair<std::string_view, std::string_view> kLlamaShortNames[] = {{"-np", "--parallel"},
                                                                              {"-ngl", "--n-gpu-layers"}};

// The arguments after the program name, in the reverse order CLI11's parse() takes them.
std::vector<std::string> arguments(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string arg = argv[i];
    for (const auto& [short_name, long_name] : kLlamaShortNames) {
      if (arg == short_name) arg = long_name;
    }
    args.push_back(std::move(arg));
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App root{"owl: run, quantize, fine-tune, evaluate, route and serve open-weight LLMs"};
  root.name("owl");
  root.require_subcommand(1);
  root.set_version_flag("--version", "owl 0.1.0");
  std::vector<owl::cli::Command> commands = {
      owl::cli::register_run(root),
      owl::cli::register_chat(root),
      owl::cli::register_serve(root),
      owl::cli::register_inspect(root),
      owl::cli::register_synth(root),
      owl::cli::register_tokenize(root),
      owl::cli::register_template(root),
      owl::cli::register_bench(root),
      owl::cli::register_logits(root),
      owl::cli::register_quantize(root),
      owl::cli::register_compare(root),
      owl::cli::register_imatrix(root),
      owl::cli::register_import(root),
      owl::cli::register_export(root),
      owl::cli::register_embed(root),
  };
  try {
    std::vector<std::string> args = arguments(argc, argv);
    root.parse(args);
  } catch (const CLI::ParseError& e) {
    return root.exit(e);
  }
  for (const owl::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
