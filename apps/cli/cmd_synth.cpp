#include "commands.h"

namespace owl::cli {

Command register_synth(CLI::App& root) {
  CLI::App* app = root.add_subcommand("synth", "(not yet available)");
  return {app, [] { return 1; }};
}

}  // namespace owl::cli
