#include "commands.h"

namespace owl::cli {

Command register_template(CLI::App& root) {
  CLI::App* app = root.add_subcommand("template", "(not yet available)");
  return {app, [] { return 1; }};
}

}  // namespace owl::cli
