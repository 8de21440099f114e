// A route (docs/router.md) as a Provider: clients ask for it by name like a model, and it decides
// which models answer.
//
//  1. Sensitive data: the request's every string (messages of every role, tool calls, the raw
//     prompt) goes through the detectors; a hit, or the header x-owl-sensitive: true, makes the
//     request sensitive. With `sensitive: local_only` a sensitive request is only ever submitted
//     to private models: when none of the route's can answer, it fails naming the detectors
//     (never the text) and nothing was sent anywhere else. A prompt given as token ids cannot
//     be read, so it counts as sensitive (fail closed).
//  2. Rules: the first rule whose conditions hold (prompt length, regex, keywords, user, x-*
//     headers, JSON mode) picks the model: a cascade step starts the cascade there, another
//     model answers alone. Sensitive requests still reach private models only.
//  3. Cascade: the first step answers; its answer is held until its confidence (mean and least
//     token log-probability, entropy, JSON and schema validity, emptiness) is known; when a rule
//     of the step's escalate_if holds, the next step is asked instead. The last step's answer is
//     relayed as it arrives.
//  4. Fallbacks: a step that fails (429, 5xx, a timeout, an unreachable upstream, a prompt over
//     its context, an error before its first token) hands the request to the fallback models in
//     order; an answer that already sent tokens is not restarted elsewhere: it ends with the error.
//  5. Canary and shadow: `canary: {model, weight}` answers weight percent of the requests that no
//     rule took with that model alone (every 100 requests, exactly that many); `shadow: MODEL`
//     sends a copy of each answered request to that model once the client has its answer, and
//     reports how it compares (on_shadow). Sensitive requests reach them only when they are
//     private.
#pragma once

#include <atomic>
#include <functional>

#include <memory>
#include <vector>

#include "router/config.h"
#include "router/in_flight.h"
#include "router/provider.h"
#include "router/sensitive.h"

namespace owl::router {

// A model a route may ask.
struct RouteMember {
  Provider* provider = nullptr;
  const ModelSpec* spec = nullptr;
};

// What a shadow model did with a copy of an answered request.
struct ShadowResult {
  std::string route, model;   // the shadow model
  std::string answered_by;    // the model whose answer the client got
  bool same_text = false;     // its first choice's text is the client's
  double word_overlap = 0;    // shared words over all words of both texts (Jaccard), 0..1
  double latency_ms = 0;      // from sending it to its end
  int64_t completion_tokens = 0;
  std::string error;          // it failed ("" when it answered)
};

struct RouteSetup {
  RouteSpec spec;
  std::vector<RouteMember> rules;     // the model of each spec.rules entry
  std::vector<RouteMember> cascade;   // one per spec.cascade step, in order
  std::vector<RouteMember> fallback;  // one per spec.fallback entry
  RouteMember canary;                 // spec.canary's model (null provider when none)
  RouteMember shadow;                 // spec.shadow's model (null provider when none)
  // Hears each shadow answer (on the shadow's thread); the answer itself is dropped.
  std::function<void(const ShadowResult&)> on_shadow;
  std::shared_ptr<const SensitiveDetector> detector;
};

// Threading: every method may be called from any thread. Each request's route runs on a thread
// of its own; the destructor cancels the ones still running and waits for them.
class RouteProvider : public Provider {
 public:
  // Errors when a step's escalation needs log-probabilities that its model cannot give (hosted).
  static core::Result<std::unique_ptr<RouteProvider>> make(RouteSetup setup, int64_t created);
  ~RouteProvider() override;
  RouteProvider(const RouteProvider&) = delete;
  RouteProvider& operator=(const RouteProvider&) = delete;

  const ModelInfo& info() const override { return info_; }
  // Returns at once with the decision to be filled; errors only for requests the route can
  // never take (n > 1 on a cascade, or a sensitive request it may not send anywhere).
  std::variant<Submission, ApiError> submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) override;
  void cancel_running() override;

 private:
  RouteProvider(RouteSetup setup, int64_t created);
  struct Run;
  void run(std::shared_ptr<Run> run);

  // A rule ready to match: its text conditions compiled, what it picks.
  struct Rule {
    const RuleSpec* spec = nullptr;
    std::shared_ptr<const SensitiveDetector> text;  // regex and keywords; null when none
    RouteMember member;
    int step = -1;  // the cascade step it starts at; -1: its model answers alone
  };
  // The first rule that holds for `request`, whose strings are `texts`; null when none.
  const Rule* match_rule(const CompletionRequest& request, const std::vector<std::string_view>& texts) const;

  void shadow(const std::shared_ptr<Run>& r, const std::string& answered_by, const std::string& answer);

  RouteSetup setup_;
  std::atomic<uint64_t> requests_{0};  // requests no rule took: the canary's count
  std::vector<Rule> rules_;
  ModelInfo info_;
  InFlight in_flight_;
};

// The confidence of an answer, from its tokens' log-probabilities.
struct Confidence {
  int64_t n_tokens = 0;
  double mean_logprob = 0;
  double min_logprob = 0;
  double mean_entropy = 0;  // over the top log-probabilities of each token, renormalized
};
Confidence measure_confidence(const std::vector<sample::Sampled>& tokens);

// The first rule of `rules` that holds for this answer, as "mean_logprob -2.31 < -1.2"; "" when
// none does. `request` gives the schema and JSON mode.
std::string escalation_reason(const Escalation& rules, const CompletionRequest& request, const std::string& text,
                              const Confidence& confidence);

}  // namespace owl::router
