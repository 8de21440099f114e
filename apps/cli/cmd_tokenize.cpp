#include "commands.h"

namespace owl::cli {

Command register_tokenize(CLI::App& root) {
  CLI::App* app = root.add_subcommand("tokenize", "(not yet available)");
  return {app, [] { return 1; }};
}

}  // namespace owl::cli
