#include "router/route_provider.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <cmath>
#include <thread>

#include <fmt/ranges.h>

#include "constrain/grammar.h"
#include "constrain/matcher.h"

namespace owl::router {
namespace {

using engine::Clock;
using engine::Event;
using std::chrono::milliseconds;

constexpr milliseconds kPoll{100};
constexpr milliseconds kCancelWait{10000};  // for a cancelled step to end its sequences

// Every string of a JSON value (message contents, tool-call arguments, names).
void collect_strings(const Json& j, std::vector<std::string_view>& out) {
  if (j.is_string()) {
    out.emplace_back(j.get_ref<const std::string&>());
  } else if (j.is_structured()) {
    for (const Json& v : j) collect_strings(v, out);
  }
}

bool needs_logprobs(const Escalation& e) { return e.mean_logprob_below || e.min_logprob_below || e.entropy_above; }

// What one step's attempt came to.
struct Attempt {
  enum class Kind { kAnswered, kFailed, kCancelled } kind = Kind::kFailed;
  std::optional<ApiError> error;   // kFailed
  std::vector<Event> held;         // kAnswered with hold: every event, in order
  std::string text;                // choice 0's text
  std::vector<sample::Sampled> tokens;  // choice 0's tokens, with their log-probabilities
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double seconds = 0;
  Submission submission;
};

bool fallback_worthy(const ApiError& e) {
  return e.status == 429 || e.status >= 500 || e.code == "context_length_exceeded";
}

}  // namespace


Confidence measure_confidence(const std::vector<sample::Sampled>& tokens) {
  Confidence c;
  if (tokens.empty()) return c;
  c.min_logprob = 0;
  double sum = 0, entropy = 0;
  for (const sample::Sampled& s : tokens) {
    sum += s.logprob;
    c.min_logprob = std::min<double>(c.min_logprob, s.logprob);
    double z = 0, h = 0;
    for (const sample::TokenLogprob& t : s.top) z += std::exp(static_cast<double>(t.logprob));
    for (const sample::TokenLogprob& t : s.top) {
      const double p = std::exp(static_cast<double>(t.logprob)) / z;
      if (p > 0) h -= p * std::log(p);
    }
    entropy += h;
  }
  c.n_tokens = static_cast<int64_t>(tokens.size());
  c.mean_logprob = sum / static_cast<double>(tokens.size());
  c.mean_entropy = entropy / static_cast<double>(tokens.size());
  return c;
}

std::string escalation_reason(const Escalation& rules, const CompletionRequest& request, const std::string& text,
                              const Confidence& confidence) {
  const bool blank = std::all_of(text.begin(), text.end(), [](char ch) { return std::isspace(static_cast<unsigned char>(ch)); });
  if (rules.empty && blank) return "empty answer";
  if (rules.mean_logprob_below && confidence.n_tokens > 0 && confidence.mean_logprob < *rules.mean_logprob_below) {
    return fmt::format("mean_logprob {:.3f} < {}", confidence.mean_logprob, *rules.mean_logprob_below);
  }
  if (rules.min_logprob_below && confidence.n_tokens > 0 && confidence.min_logprob < *rules.min_logprob_below) {
    return fmt::format("min_logprob {:.3f} < {}", confidence.min_logprob, *rules.min_logprob_below);
  }
  if (rules.entropy_above && confidence.n_tokens > 0 && confidence.mean_entropy > *rules.entropy_above) {
    return fmt::format("entropy {:.3f} > {}", confidence.mean_entropy, *rules.entropy_above);
  }
  if (rules.json_invalid && Json::parse(text, nullptr, false).is_discarded()) return "the answer is not JSON";
  if (rules.schema_invalid && !request.grammar.empty() && request.json_output) {
    auto grammar = constrain::Grammar::parse(request.grammar);
    bool valid = false;
    if (grammar) {
      constrain::Matcher matcher(*grammar);
      valid = matcher.feed(text) && matcher.accepted();
    }
    if (!valid) return "the answer does not satisfy the schema";
  }
  return "";
}

struct RouteProvider::Run {
  CompletionRequest req;
  std::shared_ptr<engine::EventSink> sink;
  std::shared_ptr<RouteDecision> decision;
  bool sensitive = false;
  const Rule* rule = nullptr;  // the rule that matched, if any
  bool relayed = false;  // an event reached the client

  // Fills the decision with the answering step before the client hears of it.
  void answered_by(const RouteMember& m, std::string kind, const Submission& s) {
    decision->model = m.spec->name;
    decision->kind = sensitive ? "sensitive" : std::move(kind);
    decision->tokenizer = m.provider->info().tokenizer;
    decision->tool_syntax = s.tool_syntax;
    decision->tool_prefix = s.tool_prefix;
    decision->prompt_text = s.prompt_text;
  }
  // An event for the client, its top log-probabilities cut to what it asked for.
  void relay(Event e) {
    if (e.kind == Event::Kind::kToken && e.sampled.top.size() > static_cast<size_t>(req.top_logprobs)) {
      e.sampled.top.resize(static_cast<size_t>(req.top_logprobs));
    }
    relayed = true;
    sink->push(std::move(e));
  }
};

RouteProvider::RouteProvider(RouteSetup setup, int64_t created) : setup_(std::move(setup)) {
  info_.id = setup_.spec.name;
  info_.created = created;
  info_.owned_by = "owl-route";
  // The prices of a route bound what one request can cost: every distinct model it may ask,
  // each asked once (a cascade escalates through its steps, then the fallbacks). A shadow's copy
  // is the operator's cost, not the caller's.
  std::vector<const Provider*> members;
  std::vector<RouteMember> canary = {setup_.canary};
  for (const std::vector<RouteMember>* list : {&setup_.rules, &setup_.cascade, &setup_.fallback, &canary}) {
    for (const RouteMember& m : *list) {
      if (m.provider == nullptr || std::find(members.begin(), members.end(), m.provider) != members.end()) continue;
      members.push_back(m.provider);
      info_.usd_per_input_token += m.provider->info().usd_per_input_token;
      info_.usd_per_output_token += m.provider->info().usd_per_output_token;
      info_.usd_per_second += m.provider->info().usd_per_second;
    }
  }
}

core::Result<std::unique_ptr<RouteProvider>> RouteProvider::make(RouteSetup setup, int64_t created) {
  if (setup.cascade.size() != setup.spec.cascade.size() || setup.fallback.size() != setup.spec.fallback.size()) {
    return core::make_error("route '{}': its models are not all set up", setup.spec.name);
  }
  for (size_t i = 0; i < setup.cascade.size(); ++i) {
    if (setup.cascade[i].provider == nullptr || setup.cascade[i].spec == nullptr) {
      return core::make_error("route '{}': step {} has no model", setup.spec.name, i);
    }
    // Owl nodes relay their log-probabilities; other hosted APIs may not.
    if (needs_logprobs(setup.spec.cascade[i].escalate_if) && !setup.cascade[i].spec->local() && !setup.cascade[i].spec->served_by_nodes()) {
      return core::make_error("route '{}': step '{}' escalates on log-probabilities, which the hosted model does not give; "
                              "use json_invalid, schema_invalid or empty", setup.spec.name, setup.cascade[i].spec->name);
    }
  }
  if (setup.detector == nullptr) return core::make_error("route '{}': no sensitive-data detector", setup.spec.name);
  if (setup.rules.size() != setup.spec.rules.size()) return core::make_error("route '{}': its rules' models are not set up", setup.spec.name);
  std::unique_ptr<RouteProvider> route(new RouteProvider(std::move(setup), created));
  const RouteSetup& s = route->setup_;
  for (size_t i = 0; i < s.spec.rules.size(); ++i) {
    const RuleSpec& spec = s.spec.rules[i];
    Rule rule{.spec = &spec, .member = s.rules[i]};
    if (rule.member.provider == nullptr || rule.member.spec == nullptr) return core::make_error("route '{}': rule {} has no model", s.spec.name, i + 1);
    for (size_t k = 0; k < s.spec.cascade.size(); ++k) {
      if (s.spec.cascade[k].model == spec.model) rule.step = static_cast<int>(k);
    }
    if (!spec.regex.empty() || !spec.keywords.empty()) {
      auto text = SensitiveDetector::make({.builtin = {}, .custom = {{.name = "rule", .regex = spec.regex, .words = spec.keywords}}});
      if (!text) return core::make_error("route '{}': the rule at line {}: {}", s.spec.name, spec.line, text.message());
      rule.text = std::make_shared<const SensitiveDetector>(std::move(*text));
    }
    route->rules_.push_back(std::move(rule));
  }
  return route;
}

const RouteProvider::Rule* RouteProvider::match_rule(const CompletionRequest& request,
                                                     const std::vector<std::string_view>& texts) const {
  int64_t chars = 0;
  for (std::string_view t : texts) chars += static_cast<int64_t>(t.size());
  for (const Rule& rule : rules_) {
    const RuleSpec& c = *rule.spec;
    if (c.prompt_chars_above && !(chars > *c.prompt_chars_above)) continue;
    if (c.prompt_chars_below && !(chars < *c.prompt_chars_below)) continue;
    if (!c.users.empty() && std::find(c.users.begin(), c.users.end(), request.user) == c.users.end()) continue;
    if (c.json && *c.json != request.json_output) continue;
    const bool headers_hold = std::all_of(c.headers.begin(), c.headers.end(), [&](const auto& want) {
      return std::find(request.headers.begin(), request.headers.end(), want) != request.headers.end();
    });
    if (!headers_hold) continue;
    if (rule.text != nullptr &&
        std::none_of(texts.begin(), texts.end(), [&](std::string_view t) { return !rule.text->find(t).empty(); })) {
      continue;
    }
    return &rule;
  }
  return nullptr;
}

void RouteProvider::cancel_running() { in_flight_.cancel_all(); }

RouteProvider::~RouteProvider() { in_flight_.cancel_and_wait(); }

std::variant<Submission, ApiError> RouteProvider::submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) {
  const RouteSpec& spec = setup_.spec;
  if (setup_.cascade.size() > 1 && request.n > 1) {
    return ApiError{.message = fmt::format("the route '{}' is a cascade, which judges one answer at a time: n must be 1", spec.name),
                    .param = "n"};
  }
  auto decision = std::make_shared<RouteDecision>();
  decision->route = spec.name;
  std::vector<std::string_view> texts;
  collect_strings(request.messages, texts);
  texts.emplace_back(request.prompt_text);
  std::vector<std::string>& fired = decision->detectors;
  for (std::string_view text : texts) {
    for (std::string& name : setup_.detector->fired(text)) {
      if (std::find(fired.begin(), fired.end(), name) == fired.end()) fired.push_back(std::move(name));
    }
  }
  if (!request.prompt_tokens.empty()) fired.push_back("token_ids");  // unreadable: fail closed
  if (request.marked_sensitive) fired.push_back("x-owl-sensitive");
  std::sort(fired.begin(), fired.end());
  const bool sensitive = !fired.empty() && spec.sensitive != SensitivePolicy::kAllow;
  if (sensitive && spec.sensitive == SensitivePolicy::kBlock) {
    return ApiError{.status = 403, .message = fmt::format("the route '{}' refuses requests with sensitive data (detected: {})",
                                                          spec.name, fmt::join(fired, ", ")),
                    .code = "sensitive_data_refused"};
  }
  if (sensitive) {
    bool any_private = false;
    for (const auto* list : {&setup_.cascade, &setup_.fallback}) {
      for (const RouteMember& m : *list) any_private = any_private || m.spec->is_private;
    }
    if (!any_private) {
      return ApiError{.status = 403, .message = fmt::format("the route '{}' has no private model for sensitive data (detected: {}); "
                                                            "nothing was sent", spec.name, fmt::join(fired, ", ")),
                      .code = "sensitive_data_no_private_model"};
    }
  }
  auto run = std::make_shared<Run>();
  run->rule = match_rule(request, texts);
  run->req = request;
  run->sink = sink;
  run->decision = decision;
  run->sensitive = sensitive;
  in_flight_.start(sink, [this, run] { this->run(run); });
  return Submission{.decision = decision};
}

namespace {

// Asks one model. With `hold`, every event is kept for the route to judge; without, events are
// relayed as they come (the ends held until the cost is known). An error before anything was
// relayed is a failure the route may hand to a fallback.
Attempt ask(const RouteMember& m, CompletionRequest q, const Escalation* rules, bool hold,
            const std::function<void(Event)>& relay, const std::function<void(const Submission&)>& before_first,
            const std::shared_ptr<engine::EventSink>& client) {
  Attempt a;
  if (rules != nullptr && needs_logprobs(*rules)) {
    q.logprobs = true;
    if (rules->entropy_above) q.top_logprobs = std::max(q.top_logprobs, 20);
    q.sampling.logprobs = true;
    q.sampling.n_probs = q.top_logprobs;
  }
  auto stream = std::make_shared<engine::RequestStream>(q.n);
  auto submitted = m.provider->submit(q, stream);
  if (auto* e = std::get_if<ApiError>(&submitted)) {
    a.error = *e;
    return a;
  }
  a.submission = std::get<Submission>(submitted);
  std::vector<Event> ends;
  bool relayed = false, cancelled = false;
  Clock::time_point first = Clock::time_point::max(), last{};
  const auto cancel_deadline = [&] { return Clock::now() + kCancelWait; };
  Clock::time_point give_up = Clock::time_point::max();
  Event e;
  while (!stream->finished()) {
    if (!cancelled && client->cancelled()) {
      cancelled = true;
      stream->cancel();
      give_up = cancel_deadline();
    }
    if (Clock::now() > give_up) break;
    if (!stream->pop(e, kPoll)) continue;
    if (e.kind == Event::Kind::kError && !relayed) {
      stream->cancel();
      a.error = ApiError{.status = 502, .message = e.text, .type = "server_error", .code = "model_error"};
      Event rest;
      const auto until = cancel_deadline();
      while (!stream->finished() && Clock::now() < until) stream->pop(rest, kPoll);
      return a;
    }
    if (e.kind == Event::Kind::kToken && e.index == 0) {
      a.text += e.text;
      if (e.has_token) a.tokens.push_back(e.sampled);
    }
    if (e.kind == Event::Kind::kEnd) {
      a.prompt_tokens = std::max(a.prompt_tokens, e.stats.n_prompt);
      a.completion_tokens += e.stats.n_generated;
      first = std::min(first, e.stats.t_admitted);
      last = std::max(last, e.stats.t_end);
    }
    if (hold) {
      a.held.push_back(std::move(e));
    } else if (e.kind == Event::Kind::kEnd || e.kind == Event::Kind::kError) {
      ends.push_back(std::move(e));
    } else {
      if (!relayed) before_first(a.submission);
      relayed = true;
      relay(std::move(e));
    }
  }
  if (first != Clock::time_point::max()) a.seconds = std::chrono::duration<double>(last - first).count();
  a.kind = cancelled ? Attempt::Kind::kCancelled : Attempt::Kind::kAnswered;
  if (!hold) {
    if (!relayed) before_first(a.submission);
    a.held = std::move(ends);  // the caller prices the answer, then relays these
  }
  return a;
}

}  // namespace

void RouteProvider::run(std::shared_ptr<Run> r) {
  const RouteSpec& spec = setup_.spec;
  RouteDecision& d = *r->decision;
  auto allowed = [&](const RouteMember& m) { return !r->sensitive || m.spec->is_private; };
  auto relay = [&](Event e) { r->relay(std::move(e)); };
  // A rule that matched: the cascade starts at its step, or its model answers alone.
  size_t first_step = 0;
  bool use_cascade = true;
  std::optional<ApiError> failure;
  std::vector<const ModelSpec*> failed;
  const Rule* rule = r->rule;
  const RouteMember* alone = nullptr;  // the model that answers without the cascade
  std::string alone_kind;
  if (rule != nullptr) {
    d.steps.push_back(fmt::format("rule at line {}: {}", rule->spec->line, rule->member.spec->name));
    if (!allowed(rule->member)) {
      // A sensitive request: the whole cascade's private steps answer instead.
      d.steps.push_back(fmt::format("{}: skipped (not private)", rule->member.spec->name));
    } else if (rule->step >= 0) {
      first_step = static_cast<size_t>(rule->step);
    } else {
      use_cascade = false;
      alone = &rule->member, alone_kind = "rule";
    }
  } else if (spec.canary && setup_.canary.provider != nullptr) {
    // Exactly weight of every 100 requests: the n-th is the canary's when floor(n w / 100) steps.
    const uint64_t n = requests_.fetch_add(1);
    const auto share = [&](uint64_t k) { return static_cast<uint64_t>(static_cast<double>(k) * spec.canary->weight / 100.0); };
    if (share(n + 1) > share(n) && allowed(setup_.canary)) {
      d.steps.push_back(fmt::format("canary ({}%): {}", spec.canary->weight, setup_.canary.spec->name));
      use_cascade = false;
      alone = &setup_.canary, alone_kind = "canary";
    }
  }
  std::vector<size_t> steps;
  for (size_t i = first_step; use_cascade && i < setup_.cascade.size(); ++i) {
    if (allowed(setup_.cascade[i])) steps.push_back(i);
  }
  // The steps a sensitive request may not reach, noted in the order of the cascade.
  size_t noted = use_cascade ? first_step : setup_.cascade.size();
  auto note_skipped_until = [&](size_t end) {
    for (; noted < end; ++noted) {
      if (!allowed(setup_.cascade[noted])) d.steps.push_back(fmt::format("{}: skipped (not private)", setup_.cascade[noted].spec->name));
    }
    noted = std::max(noted, end + 1);
  };
  auto finish = [&](const RouteMember& m, Attempt& a) {
    note_skipped_until(setup_.cascade.size());
    d.cost_usd += m.provider->info().cost_usd(a.prompt_tokens, a.completion_tokens, a.seconds);
    for (Event& e : a.held) r->relay(std::move(e));
    if (a.kind == Attempt::Kind::kAnswered) shadow(r, m.spec->name, a.text);
  };
  if (!use_cascade) {
    const RouteMember& m = *alone;
    Attempt a = ask(m, r->req, nullptr, false, relay, [&](const Submission& s) { r->answered_by(m, alone_kind, s); }, r->sink);
    if (a.kind != Attempt::Kind::kFailed) {
      d.steps.push_back(fmt::format("{}: answered", m.spec->name));
      return finish(m, a);
    }
    d.steps.push_back(fmt::format("{}: failed ({})", m.spec->name, a.error->message));
    failed.push_back(m.spec);
    failure = a.error;
  }
  for (size_t k = 0; k < steps.size() && !failure; ++k) {
    note_skipped_until(steps[k]);
    const RouteMember& m = setup_.cascade[steps[k]];
    const bool last = k + 1 == steps.size();
    const Escalation* rules = last ? nullptr : &spec.cascade[steps[k]].escalate_if;
    const std::string kind = k > 0 ? "escalated" : rule != nullptr ? "rule" : "cascade";
    Attempt a = ask(m, r->req, rules, !last, relay, [&](const Submission& s) { r->answered_by(m, kind, s); }, r->sink);
    if (a.kind == Attempt::Kind::kCancelled) {
      if (!r->relayed) r->answered_by(m, kind, a.submission);
      return finish(m, a);
    }
    if (a.kind == Attempt::Kind::kFailed) {
      d.steps.push_back(fmt::format("{}: failed ({})", m.spec->name, a.error->message));
      failed.push_back(m.spec);
      failure = a.error;
      break;
    }
    if (last) {
      d.steps.push_back(fmt::format("{}: answered", m.spec->name));
      return finish(m, a);
    }
    const Confidence c = measure_confidence(a.tokens);
    if (k == 0 && c.n_tokens > 0) d.mean_logprob = c.mean_logprob;
    const std::string reason = escalation_reason(*rules, r->req, a.text, c);
    if (!reason.empty()) {
      d.cost_usd += m.provider->info().cost_usd(a.prompt_tokens, a.completion_tokens, a.seconds);
      d.steps.push_back(fmt::format("{}: escalated ({})", m.spec->name, reason));
      continue;
    }
    d.steps.push_back(fmt::format("{}: answered", m.spec->name));
    r->answered_by(m, kind, a.submission);
    return finish(m, a);
  }
  note_skipped_until(setup_.cascade.size());
  // A step failed: the fallbacks, in order, for errors another model may not have.
  if (failure && fallback_worthy(*failure)) {
    for (const RouteMember& m : setup_.fallback) {
      if (std::find(failed.begin(), failed.end(), m.spec) != failed.end()) continue;
      if (!allowed(m)) {
        d.steps.push_back(fmt::format("{}: skipped (not private)", m.spec->name));
        continue;
      }
      Attempt a = ask(m, r->req, nullptr, false, relay, [&](const Submission& s) { r->answered_by(m, "fallback", s); }, r->sink);
      if (a.kind == Attempt::Kind::kFailed) {
        d.steps.push_back(fmt::format("{}: failed ({})", m.spec->name, a.error->message));
        failed.push_back(m.spec);
        failure = a.error;
        continue;
      }
      d.steps.push_back(fmt::format("{}: answered", m.spec->name));
      return finish(m, a);
    }
  }
  ApiError error = failure.value_or(ApiError{.status = 503, .message = "no model of the route could answer", .type = "server_error"});
  if (r->sensitive) {
    error = ApiError{.status = 503,
                     .message = fmt::format("no private model of the route '{}' could answer a request with sensitive data "
                                            "(detected: {}); nothing was sent to other models. Last error: {}",
                                            spec.name, fmt::join(d.detectors, ", "), error.message),
                     .type = "server_error", .code = "private_models_unavailable", .retry_after_s = error.retry_after_s};
  }
  d.kind = "failed";
  d.error = error;
  for (int i = 0; i < r->req.n; ++i) {
    Event e;
    e.kind = Event::Kind::kError;
    e.index = i;
    e.text = error.message;
    r->relay(std::move(e));
  }
}

namespace {

// Words of a text, for the overlap of two answers.
std::set<std::string> words_of(const std::string& text) {
  std::set<std::string> out;
  std::string w;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      out.insert(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) out.insert(std::move(w));
  return out;
}

}  // namespace

void RouteProvider::shadow(const std::shared_ptr<Run>& r, const std::string& answered_by, const std::string& answer) {
  const RouteMember& m = setup_.shadow;
  if (m.provider == nullptr || (r->sensitive && !m.spec->is_private) || !setup_.on_shadow) return;
  // Its own sink: the client may be gone, and the copy must not end the client's answer.
  auto sink = std::make_shared<engine::RequestStream>(r->req.n);
  in_flight_.start(sink, [this, r, sink, answered_by, answer] {
    const RouteMember& s = setup_.shadow;
    ShadowResult out{.route = setup_.spec.name, .model = s.spec->name, .answered_by = answered_by};
    const auto start = Clock::now();
    Attempt a = ask(s, r->req, nullptr, true, [](Event) {}, [](const Submission&) {}, sink);
    out.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (a.kind == Attempt::Kind::kFailed) {
      out.error = a.error->message;
    } else {
      out.completion_tokens = a.completion_tokens;
      out.same_text = a.text == answer;
      const std::set<std::string> x = words_of(a.text), y = words_of(answer);
      size_t both = 0;
      for (const std::string& w : x) both += y.count(w);
      const size_t any = x.size() + y.size() - both;
      out.word_overlap = any == 0 ? 1.0 : static_cast<double>(both) / static_cast<double>(any);
    }
    setup_.on_shadow(out);
  });
}

}  // namespace owl::router
