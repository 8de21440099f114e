// Each `owl <command>` lives in its own cmd_<name>.cpp, whose register_<name>() (declared here,
// called by main.cpp) adds the subcommand and returns its Command: main() calls the run of the
// one that was parsed and exits with the code it returns.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace owl::eval {
struct CompareReport;
}

namespace owl::cli {

// Runs after parsing; returns the process exit code.
using CommandRun = std::function<int()>;

struct Command {
  CLI::App* app;  // the subcommand, owned by the root app
  CommandRun run;
};

// Registration functions, one per command file.
Command register_inspect(CLI::App& root);
Command register_synth(CLI::App& root);
Command register_tokenize(CLI::App& root);
Command register_template(CLI::App& root);
Command register_bench(CLI::App& root);
Command register_logits(CLI::App& root);
Command register_run(CLI::App& root);
Command register_chat(CLI::App& root);
Command register_serve(CLI::App& root);
Command register_quantize(CLI::App& root);
Command register_merge(CLI::App& root);
Command register_compare(CLI::App& root);
Command register_imatrix(CLI::App& root);
Command register_import(CLI::App& root);
Command register_export(CLI::App& root);
Command register_embed(CLI::App& root);
Command register_usage(CLI::App& root);
Command register_eval(CLI::App& root);
Command register_finetune(CLI::App& root);
Command register_route(CLI::App& root);
Command register_keys(CLI::App& root);
Command register_models(CLI::App& root);

// The quality report of owl compare, also printed by owl quantize --report (cmd_compare.cpp).
void print_compare_report(const eval::CompareReport& report, bool json);

}  // namespace owl::cli
