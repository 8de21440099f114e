// owl: the command-line entry point. Parsing and printing only; the work is in src/.
#include <cstdio>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App root{"owl: run, quantize, fine-tune, evaluate, route and serve open-weight LLMs"};
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
  };
  try {
    root.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return root.exit(e);
  }
  for (const owl::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
