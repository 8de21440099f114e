// owl: the command-line entry point. Parsing and printing only; the work is in src/.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"

namespace {

// llama.cpp's multi-letter single-dash options, which CLI11 cannot name, spelled in full.
void spell_llama_cpp_options(std::vector<char*>& argv) {
  static char parallel[] = "--parallel";
  static char n_gpu_layers[] = "--n-gpu-layers";
  for (size_t i = 1; i < argv.size(); ++i) {
    if (std::strcmp(argv[i], "-np") == 0) argv[i] = parallel;
    if (std::strcmp(argv[i], "-ngl") == 0) argv[i] = n_gpu_layers;
  }
}

// "owl frobnicate": the unknown command and the list of known ones, instead of CLI11's
// "The following argument was not expected".
int unknown_command(const CLI::App& root, const char* name) {
  std::string names;
  for (const CLI::App* sub : root.get_subcommands({})) names += "  " + sub->get_name() + "\n";
  std::fprintf(stderr, "owl: unknown command '%s'; the commands are:\n%s'owl help' or 'owl COMMAND --help' tells more\n",
               name, names.c_str());
  return 1;
}

bool is_command(const CLI::App& root, const char* name) {
  for (const CLI::App* sub : root.get_subcommands({})) {
    if (sub->get_name() == name) return true;
  }
  return false;
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
      owl::cli::register_merge(root),
      owl::cli::register_compare(root),
      owl::cli::register_imatrix(root),
      owl::cli::register_import(root),
      owl::cli::register_export(root),
      owl::cli::register_embed(root),
      owl::cli::register_usage(root),
      owl::cli::register_eval(root),
      owl::cli::register_finetune(root),
      owl::cli::register_route(root),
      owl::cli::register_keys(root),
      owl::cli::register_models(root),
  };
  std::vector<char*> args(argv, argv + argc);
  spell_llama_cpp_options(args);
  if (args.size() >= 2 && std::strcmp(args[1], "help") == 0) {
    if (args.size() == 2) return std::printf("%s", root.help().c_str()), 0;
    args[1] = args[2];  // owl help COMMAND -> owl COMMAND --help
    static char help[] = "--help";
    args[2] = help;
  }
  if (args.size() >= 2 && args[1][0] != '-' && !is_command(root, args[1])) {
    return unknown_command(root, args[1]);
  }
  try {
    root.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every wrong command line exits 1, as the commands' own errors do.
    return root.exit(e) == 0 ? 0 : 1;
  }
  for (const owl::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
