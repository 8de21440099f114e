#include "commands.h"

namespace owl::cli {

Command register_inspect(CLI::App& root) {
  CLI::App* app = root.add_subcommand("inspect", "(not yet available)");
  return {app, [] { return 1; }};
}

}  // namespace owl::cli
