#include "engine/session.h"

namespace owl::engine {
namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Hands each token to the callback as the scheduler produces it; keeps the end or the error.
class CallbackSink : public EventSink {
 public:
  explicit CallbackSink(const TokenCallback& on_token) : on_token_(on_token) {}
  void push(Event event) override {
    if (event.kind == Event::Kind::kToken) {
      if (!on_token_(event.text, event.sampled)) cancel();
      return;
    }
    end = std::move(event);
    ended = true;
  }
  Event end;
  bool ended = false;

 private:
  const TokenCallback& on_token_;
};

}  // namespace

Session::Session(const model::Model& model, const tokenizer::Tokenizer& tokenizer, model::Context& ctx)
    // Steps of n_batch tokens: a prompt is split where one forward() of it would split it.
    : model_(model), scheduler_(model, tokenizer, ctx, ctx.options.n_batch, nullptr) {}

core::Result<GenerateStats> Session::generate(SequenceRequest request, const TokenCallback& on_token) {
  if (request.prompt.empty()) return core::make_error("generate: empty prompt");
  OWL_TRY(sample::validate(request.params.sampling, model_.config.n_vocab));
  auto sink = std::make_shared<CallbackSink>(on_token);
  scheduler_.admit(Job{std::move(request), sink, 0});
  while (!sink->ended) {
    scheduler_.cancel(false);
    // A running sequence always has a token to compute; a step without one would loop for ever.
    if (!sink->ended && scheduler_.step() == 0) return core::make_error("generate: the scheduler stopped early");
  }
  if (sink->end.kind == Event::Kind::kError) return core::make_error("generate: {}", sink->end.text);
  const ChoiceStats& st = sink->end.stats;
  GenerateStats stats{.n_prompt = st.n_prompt - st.n_cached, .n_reused = st.n_cached, .n_generated = st.n_generated,
                      .finish = sink->end.finish};
  if (st.n_generated > 0) {
    stats.prompt_ms = ms_between(st.t_admitted, st.t_first_token);
    stats.generate_ms = ms_between(st.t_first_token, st.t_end);
  }
  return stats;
}

}  // namespace owl::engine
