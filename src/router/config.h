// The router's configuration (`owl serve --config owl.yaml`, docs/router.md): the models a
// server reaches (local GGUF files it serves itself, hosted OpenAI-compatible upstreams), the
// routes clients ask for by name (a cascade of models with escalation rules, fallbacks, what
// sensitive requests may reach) and the price of local compute. Parsing checks everything a
// typo can break and names the file, line and key of the first mistake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace owl::core {
struct At;
}

namespace owl::router {

// US dollars per million tokens.
struct Price {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
};

// A LoRA adapter a local model runs every request with (`lora:`).
struct LoraSpec {
  std::string path;    // llama.cpp's LoRA GGUF
  double scale = 1;    // the user's scale; the factor is scale × alpha / rank
  int line = 0;        // where it is given, for errors when it is loaded
};

struct ModelSpec {
  std::string name;          // the id clients ask for
  int line = 0;              // where it is defined (1-based), for later errors
  bool is_private = false;   // may receive sensitive data (`private: true`); local models are by default
  // Local: served by this process.
  std::string path;          // a GGUF file
  int parallel = 0;          // sequences at once; 0: the server's --parallel
  int64_t ctx = 0;           // positions per sequence; 0: the server's -c
  std::vector<LoraSpec> lora;  // adapters applied to every request, in order
  // Hosted: an OpenAI-compatible API.
  std::string base_url;      // e.g. https://api.openai.com/v1
  std::string model;         // the upstream's model id; "" uses `name`
  std::string api_key_env;   // the environment variable holding the key; "" sends none
  Price price;
  double timeout_s = 60;     // connect, and each wait for bytes of the answer
  int retries = 2;           // retries of a failure before any token (refused, 429, 5xx)
  std::string ca_file;       // https: PEM certificates to trust instead of the system's
  // Nodes: other owl servers serving this model, each at its base URL (`nodes:`), or every
  // address a URL's host name resolves to (`nodes_dns:`); the hosted keys above apply to every
  // node.
  std::vector<std::string> nodes;
  std::string nodes_dns;
  bool served_by_nodes() const { return !nodes.empty() || !nodes_dns.empty(); }
  // Local, instead of path: the version of this name that the alias (prod, canary) names in the
  // model registry (`owl models`), followed as the alias moves.
  std::string registry;
  bool local() const { return !path.empty() || !registry.empty(); }
};

// When a cascade step's answer is not trusted and the next step is asked. Signals left empty
// are not checked; any one that holds escalates.
struct Escalation {
  std::optional<double> mean_logprob_below;  // mean token log-probability of the answer
  std::optional<double> min_logprob_below;   // its least likely token
  std::optional<double> entropy_above;       // mean entropy (nats) over the 20 likeliest tokens
  bool json_invalid = false;                 // the answer does not parse as JSON
  bool schema_invalid = false;               // it does not satisfy the request's response_format schema
  bool empty = false;                        // it is empty or whitespace
  bool any() const {
    return mean_logprob_below || min_logprob_below || entropy_above || json_invalid || schema_invalid || empty;
  }
};

struct CascadeStep {
  std::string model;
  Escalation escalate_if;
};

enum class SensitivePolicy {
  kLocalOnly,  // a sensitive request goes only to private models; none able -> an error
  kBlock,      // a sensitive request is refused
  kAllow,      // detection is only logged
};

// A rule before the cascade: when every condition given holds, `model` answers; a model that is
// a step of the cascade starts it there (escalation goes on from it), any other answers alone
// (with the route's fallbacks). The first rule that holds decides.
struct RuleSpec {
  int line = 0;
  std::optional<int64_t> prompt_chars_above;  // bytes of every message and the prompt together
  std::optional<int64_t> prompt_chars_below;
  std::string regex;                          // PCRE2, anywhere in a message or the prompt
  std::vector<std::string> keywords;          // any of them, as whole words, any case
  std::vector<std::string> users;             // the request's `user` is one of them
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case name, exact value
  std::optional<bool> json;                   // the request asks for JSON (response_format) or not
  std::string model;
};

// A share of a route's requests answered by another model alone (a new version on trial).
struct CanarySpec {
  std::string model;
  double weight = 0;  // percent of the requests, 0..100
};

struct RouteSpec {
  std::string name;
  int line = 0;
  std::optional<CanarySpec> canary;
  std::string shadow;  // a model every answered request is also sent to; its answer is compared, then dropped
  SensitivePolicy sensitive = SensitivePolicy::kLocalOnly;
  std::vector<RuleSpec> rules;
  std::vector<CascadeStep> cascade;    // at least one step
  std::vector<std::string> fallback;   // tried in order when a step fails
  // (`stream_escalation: false` is accepted and is what a cascade does: it holds a step's answer
  // until its confidence is known; true is refused, a streamed answer cannot be taken back.)
};

// A detector of the user's own: a regex or a list of words.
struct CustomDetectorSpec {
  std::string name;
  std::string regex;
  std::vector<std::string> words;
};

// Where the server keeps API keys and model versions, and whether it requires keys (`state:`,
// the config's form of --auth, --state, --redis and --public-metrics).
struct StateSpec {
  bool auth = false;
  std::string file;   // the SQLite state file
  std::string redis;  // redis://HOST:PORT, shared by gateways
  bool public_metrics = false;
};

struct RouterConfig {
  std::string file;  // where it was read from, for messages
  StateSpec state;
  std::vector<ModelSpec> models;
  std::vector<RouteSpec> routes;
  double local_per_core_hour = 0;  // US dollars per core-hour of local compute
  std::vector<std::string> detectors = {"email", "phone", "card", "iban", "us_ssn", "secret"};
  std::vector<CustomDetectorSpec> custom_detectors;

  const ModelSpec* find_model(std::string_view name) const;
};

// Reads a hosted model's keys (base_url, model, api_key_env, price, timeout_s, retries) at `at`
// into `m`; an eval suite's hosted candidates take the same keys.
core::Status parse_hosted(const core::At& at, ModelSpec& m);
// The keys of a model served elsewhere (model, api_key_env, price, timeout_s, retries, ca_file);
// `url` is where it is served, which decides whether ca_file applies.
core::Status parse_upstream_options(const core::At& at, ModelSpec& m, std::string_view url);

// `name` labels messages (the file's path).
core::Result<RouterConfig> parse_router_config(std::string_view yaml, std::string_view name);
core::Result<RouterConfig> load_router_config(const std::string& path);

const char* sensitive_policy_name(SensitivePolicy policy);

}  // namespace owl::router

namespace owl::router {

// `yaml` (a router config named `name`) with `key` of route `route`'s cascade step `step`'s
// escalate_if set to `value`: the value is replaced where it is written, or the key added to the
// step's escalate_if, so that the rest of the file (comments, order, layout) stays as it was.
// The result is parsed again and must give the value back.
core::Result<std::string> set_escalation_threshold(std::string_view yaml, std::string_view name, const std::string& route,
                                                   size_t step, const std::string& key, double value);

}  // namespace owl::router
