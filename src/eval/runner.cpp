#include "eval/runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "eval/cache.h"
#include "gguf/file_type.h"
#include "gguf/keys.h"
#include "model/adapter.h"
#include "model/model.h"
#include "quantize/quantize.h"
#include "router/hosted_provider.h"
#include "router/local_provider.h"
#include "router/route_provider.h"
#include "template/chat.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

namespace owl::eval {
namespace {

using Clock = std::chrono::steady_clock;
using router::CompletionRequest;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Resident memory now (VmRSS), in bytes; 0 when unknown.
int64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Samples VmRSS every 20 ms while it lives; peak() is the most seen.
class RssSampler {
 public:
  RssSampler() : thread_([this] { run(); }) {}
  ~RssSampler() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  int64_t peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::max(peak_, rss_bytes());
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      peak_ = std::max(peak_, rss_bytes());
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t peak_ = 0;
  std::thread thread_;
};

// Events of many requests into one queue, each tagged with its work item.
class Collector {
 public:
  void push(size_t item, engine::Event e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.emplace_back(item, std::move(e));
    }
    cv_.notify_one();
  }
  bool pop(std::pair<size_t, engine::Event>& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<size_t, engine::Event>> events_;
};

// Shares its collector: a request still in flight when its reader gave up (a judge's timeout)
// pushes into a queue that is still there.
class ItemSink : public engine::EventSink {
 public:
  ItemSink(std::shared_ptr<Collector> c, size_t item) : collector_(std::move(c)), item_(item) {}
  void push(engine::Event e) override { collector_->push(item_, std::move(e)); }

 private:
  std::shared_ptr<Collector> collector_;
  size_t item_;
};

// One request to make: a case's generation, or one label of its choice scorer.
struct WorkItem {
  size_t result = 0;            // index into the candidate's results
  int label = -1;               // choice: the label's index; -1: generation
  CompletionRequest request;
  std::string key;              // cache key
  int64_t label_from = 0;       // choice: the first label token's index in the prompt
  // Filled as it runs.
  std::string text;
  std::vector<sample::Sampled> tokens;
  double label_logprob = 0;
  Clock::time_point sent, first;
  bool got_first = false;
  engine::ChoiceStats stats;
  std::string error;
  std::shared_ptr<ItemSink> sink;
  bool done = false;
  Json restored;                // what the cache held
};

// A loaded local candidate: its model, tokenizer, chat template, adapter, engine and provider.
struct LocalEnv {
  std::unique_ptr<model::Model> model;
  std::optional<tokenizer::Tokenizer> tokenizer;
  std::optional<tmpl::Template> chat_template;
  std::string chat_template_source;
  std::shared_ptr<model::AdapterSet> adapters;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<router::LocalProvider> provider;
};

core::Status load_local(const std::string& path, const Candidate& c, const RunOptions& options, int64_t n_ctx, LocalEnv& env) {
  auto model = model::load_model(path);
  if (!model) return model.error();
  env.model = std::move(*model);
  auto tok = tokenizer::Tokenizer::load(env.model->file);
  if (!tok) return tok.error();
  env.tokenizer.emplace(std::move(*tok));
  const gguf::Value* own = env.model->file.find(gguf::keys::kTokenizerChatTemplate);
  env.chat_template_source = own && own->as_string() ? *own->as_string() : *tmpl::builtin_format("chatml");
  auto t = tmpl::Template::parse(env.chat_template_source);
  if (!t) return core::make_error("{}: chat template: {}", path, t.message());
  env.chat_template.emplace(std::move(*t));
  if (!c.adapter.empty()) {
    auto adapter = model::load_lora(c.adapter, *env.model);
    if (!adapter) return adapter.error();
    env.adapters = std::make_shared<model::AdapterSet>();
    env.adapters->adapters.emplace_back(*adapter, static_cast<float>(c.adapter_scale));
  }
  engine::EngineOptions eo;
  eo.n_parallel = std::clamp(options.parallel, 1, engine::kMaxParallel);
  eo.n_ctx = n_ctx;
  eo.n_threads = options.n_threads;
  eo.max_queue = engine::kMaxQueue;
  auto engine = engine::Engine::make(*env.model, *env.tokenizer, nullptr, eo);
  if (!engine) return engine.error();
  env.engine = std::move(*engine);
  env.provider = std::make_unique<router::LocalProvider>(router::LocalModel{
      .id = c.id, .model = env.model.get(), .tokenizer = &*env.tokenizer, .chat_template = &*env.chat_template,
      .chat_template_source = env.chat_template_source, .engine = env.engine.get(), .adapters = env.adapters});
  return {};
}

// The file a local candidate evaluates: the model itself, or its quantized copy in the cache
// (made once).
core::Result<std::string> prepare_model(const Candidate& c, const std::string& model_hash, const RunOptions& options) {
  if (c.quant.empty()) return c.model;
  const gguf::FileTypeInfo* preset = gguf::find_file_type(c.quant);
  if (preset == nullptr) return core::make_error("unknown quantization '{}'", c.quant);
  const std::string out = (std::filesystem::path(options.cache_dir) / "models" /
                           fmt::format("{}-{}.{}.gguf", std::filesystem::path(c.model).stem().string(), model_hash.substr(0, 12), c.quant))
                              .string();
  if (std::filesystem::exists(out)) return out;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out).parent_path(), ec);
  if (options.on_note) options.on_note(fmt::format("quantizing {} to {} (once; kept in {})", c.model, c.quant, out));
  quantize::QuantizeOptions qo;
  qo.input = c.model;
  qo.output = out;
  qo.preset = *preset;
  qo.n_threads = options.n_threads;
  auto summary = quantize::quantize_model(qo);
  if (!summary) return core::make_error("quantizing to {}: {}", c.quant, summary.message());
  return out;
}

Json sampling_json(const Suite& suite, int repeat) {
  return Json{{"temperature", suite.temperature}, {"top_p", suite.top_p}, {"max_tokens", suite.max_tokens},
              {"stop", suite.stop}, {"seed", suite.seed + static_cast<uint64_t>(repeat)}};
}

CompletionRequest base_request(const Suite& suite, int repeat) {
  CompletionRequest r;
  r.max_tokens = suite.max_tokens;
  r.stop = suite.stop;
  r.sampling.temperature = static_cast<float>(suite.temperature);
  r.sampling.top_p = static_cast<float>(suite.top_p);
  r.sampling.top_k = 0;
  r.sampling.min_p = 0;
  r.sampling.seed = suite.seed + static_cast<uint64_t>(repeat);
  r.seeded = true;
  r.passthrough = Json::object();
  if (suite.temperature != 0) r.passthrough["temperature"] = suite.temperature;
  else r.passthrough["temperature"] = 0;
  if (suite.top_p < 1) r.passthrough["top_p"] = suite.top_p;
  r.passthrough["seed"] = suite.seed + static_cast<uint64_t>(repeat);
  return r;
}

// The labels of a choice scorer for a case.
std::vector<std::string> choice_labels(const ScorerSpec& s, const Case& c) {
  if (!s.labels.empty()) return s.labels;
  std::vector<std::string> out;
  for (const Json& l : c.fields["choices"]) out.push_back(l.is_string() ? l.get<std::string>() : l.dump());
  return out;
}

const ScorerSpec* choice_scorer(const std::vector<ScorerSpec>& scorers) {
  for (const ScorerSpec& s : scorers) {
    if (s.type == ScorerType::kChoice) return &s;
  }
  return nullptr;
}

bool needs_generation(const std::vector<ScorerSpec>& scorers) {
  return std::any_of(scorers.begin(), scorers.end(), [](const ScorerSpec& s) { return s.type != ScorerType::kChoice; });
}

// A judge: the model that scores outputs against a rubric.
struct Judge {
  LocalEnv local;
  std::unique_ptr<router::HostedProvider> hosted;
  router::Provider* provider = nullptr;
};

core::Result<Score> run_judge(Judge& judge, const ScorerSpec& spec, const Case& c, const std::string& output) {
  Json vars = c.fields;
  vars["output"] = output;
  if (!vars.contains("expected")) vars["expected"] = "";
  auto t = tmpl::Template::parse(spec.judge.rubric);
  if (!t) return core::make_error("judge rubric: {}", t.message());
  auto prompt = t->render(vars);
  if (!prompt) return core::make_error("judge rubric: {}", prompt.message());
  CompletionRequest r;
  r.endpoint = router::Endpoint::kChat;
  r.messages = Json::array({Json{{"role", "user"}, {"content", *prompt}}});
  r.max_tokens = spec.judge.max_tokens;
  r.sampling.temperature = 0;
  r.seeded = true;
  r.passthrough = Json{{"temperature", 0}};
  auto collector = std::make_shared<Collector>();
  auto sink = std::make_shared<ItemSink>(collector, 0);
  auto sub = judge.provider->submit(r, sink);
  if (auto* e = std::get_if<router::ApiError>(&sub)) return core::make_error("judge: {}", e->message);
  std::string text;
  for (;;) {
    std::pair<size_t, engine::Event> ev;
    if (!collector->pop(ev, std::chrono::minutes(10))) {
      sink->cancel();
      judge.provider->cancel_running();
      return core::make_error("judge: no answer in 10 minutes");
    }
    if (ev.second.kind == engine::Event::Kind::kToken) text += ev.second.text;
    else if (ev.second.kind == engine::Event::Kind::kError) return core::make_error("judge: {}", ev.second.text);
    else break;
  }
  std::regex parse;
  try {
    parse = std::regex(spec.judge.parse);
  } catch (const std::regex_error& e) {
    return core::make_error("judge parse rule '{}': {}", spec.judge.parse, e.what());
  }
  Score s;
  std::smatch m;
  if (!std::regex_search(text, m, parse) || m.size() < 2) {
    s.detail = fmt::format("the judge's answer has no score: '{}'", text.substr(0, 120));
    return s;
  }
  const double v = std::strtod(m[1].str().c_str(), nullptr) / spec.judge.scale;
  s.value = std::clamp(v, 0.0, 1.0);
  s.passed = s.value >= spec.threshold;
  s.detail = fmt::format("judge said '{}' -> {:.3f}", m[1].str(), s.value);
  return s;
}

class Runner {
 public:
  Runner(const Suite& suite, const RunOptions& options, ResultCache* cache) : suite_(suite), options_(options), cache_(cache) {}

  CandidateRun run(const Candidate& c) {
    CandidateRun out;
    out.candidate = c;
    const auto t0 = Clock::now();
    RssSampler rss;
    if (auto s = c.local() ? run_local(c, out) : run_hosted(c, out); !s) {
      out.failure = s.message();
      out.cases.clear();
    }
    out.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (c.local()) out.peak_rss_bytes = rss.peak();
    return out;
  }

  Judge* judge_for(const ScorerSpec& spec, std::string& error) {
    const std::string key = spec.judge.base_url + "|" + spec.judge.model;
    if (auto it = judges_.find(key); it != judges_.end()) return it->second.get();
    auto j = std::make_unique<Judge>();
    if (!spec.judge.base_url.empty()) {
      router::ModelSpec m;
      m.name = spec.judge.model;
      m.model = spec.judge.model;
      m.base_url = spec.judge.base_url;
      const char* k = spec.judge.api_key_env.empty() ? nullptr : std::getenv(spec.judge.api_key_env.c_str());
      j->hosted = std::make_unique<router::HostedProvider>(m, k ? k : "", 0);
      j->provider = j->hosted.get();
    } else {
      std::string path = spec.judge.model;
      if (!path.empty() && path.front() != '/' && !suite_.dir.empty()) path = (std::filesystem::path(suite_.dir) / path).string();
      Candidate jc{.id = "judge", .model = path};
      RunOptions o = options_;
      o.parallel = 1;
      if (auto s = load_local(path, jc, o, 0, j->local); !s) {
        error = fmt::format("judge model: {}", s.message());
        return nullptr;
      }
      j->provider = j->local.provider.get();
    }
    return (judges_[key] = std::move(j)).get();
  }

  void score(const Case& c, CaseResult& r) {
    const std::vector<ScorerSpec>& scorers = suite_.scorers_of(c);
    r.scores.clear();
    for (const ScorerSpec& s : scorers) {
      Score sc;
      if (!r.error.empty()) {
        sc.detail = r.error;
      } else if (s.type == ScorerType::kChoice) {
        const Json& expected = c.fields[s.field];
        const std::string want = normalize_text(expected.is_string() ? expected.get<std::string>() : expected.dump(), s.normalize);
        sc.value = normalize_text(r.output, s.normalize) == want ? 1 : 0;
        sc.passed = sc.value >= s.threshold;
        sc.detail = sc.passed ? "" : fmt::format("expected '{}', chose '{}'", want, r.output);
      } else if (s.type == ScorerType::kJudge) {
        std::string error;
        Judge* j = judge_for(s, error);
        auto got = j ? run_judge(*j, s, c, r.output) : core::Result<Score>(core::Error{error});
        sc = got ? *got : Score{.detail = got.message()};
      } else {
        auto got = score_output(s, ScoreInput{.case_fields = c.fields, .output = r.output, .output_tokens = r.completion_tokens});
        sc = got ? *got : Score{.detail = got.message()};
      }
      r.scores.push_back(std::move(sc));
    }
    decide_case(scorers, suite_.case_pass, r);
  }

 private:
  // The work of one candidate: a result per case and repeat, and the requests that fill them.
  core::Status plan(const Candidate& c, const std::string& identity, router::LocalProvider* local, CandidateRun& out,
                    std::vector<WorkItem>& items) {
    for (size_t ci = 0; ci < suite_.cases.size(); ++ci) {
      const Case& kase = suite_.cases[ci];
      const std::vector<ScorerSpec>& scorers = suite_.scorers_of(kase);
      auto prompt = suite_.render_prompt(kase);
      if (!prompt) return prompt.error();
      auto system = suite_.render_system(kase);
      if (!system) return system.error();
      for (int rep = 0; rep < suite_.repeats; ++rep) {
        out.cases.push_back(CaseResult{.case_index = ci, .repeat = rep});
        const size_t ri = out.cases.size() - 1;
        CompletionRequest req = base_request(suite_, rep);
        if (suite_.mode == Mode::kChat) {
          req.endpoint = router::Endpoint::kChat;
          req.messages = Json::array();
          if (!system->empty()) req.messages.push_back(Json{{"role", "system"}, {"content", *system}});
          req.messages.push_back(Json{{"role", "user"}, {"content", *prompt}});
        } else {
          req.endpoint = router::Endpoint::kCompletion;
          req.prompt_text = *prompt;
        }
        const Json what = Json{{"v", 1}, {"candidate", identity}, {"mode", suite_.mode == Mode::kChat ? "chat" : "completion"},
                               {"system", *system}, {"prompt", *prompt}, {"sampling", sampling_json(suite_, rep)}};
        if (needs_generation(scorers)) {
          req.logprobs = c.local();
          req.sampling.logprobs = c.local();
          Json k = what;
          k["kind"] = "generate";
          items.push_back(WorkItem{.result = ri, .request = req, .key = sha256_hex(k.dump(-1, ' ', false, Json::error_handler_t::replace))});
        }
        if (const ScorerSpec* choice = choice_scorer(scorers)) {
          if (local == nullptr) return core::make_error("the choice scorer needs a local model (log-probabilities of the labels); '{}' is hosted", c.id);
          std::string rendered;
          auto ctx_ids = local->prompt_tokens(req, "", rendered);
          if (auto* e = std::get_if<router::ApiError>(&ctx_ids)) return core::make_error("case '{}': {}", kase.id, e->message);
          const auto& context = std::get<std::vector<int32_t>>(ctx_ids);
          const std::vector<std::string> labels = choice_labels(*choice, kase);
          for (size_t li = 0; li < labels.size(); ++li) {
            // The label as it tokenizes after the prompt: lm-evaluation-harness's split of the
            // tokens of prompt + label where the prompt's end.
            CompletionRequest lr = req;
            lr.endpoint = router::Endpoint::kCompletion;
            lr.messages = Json();
            lr.prompt_text.clear();
            std::string text;
            auto whole = local->prompt_tokens(req, labels[li], text);
            std::vector<int32_t> full;
            if (auto* ids = std::get_if<std::vector<int32_t>>(&whole)) full = std::move(*ids);
            if (full.size() <= context.size() || !std::equal(context.begin(), context.end(), full.begin())) {
              full = context;
              const auto tail = local->tokenizer().tokenize(labels[li], {.add_special = false, .parse_special = false});
              full.insert(full.end(), tail.begin(), tail.end());
            }
            lr.prompt_tokens = full;
            lr.max_tokens = 0;
            lr.prompt_logprobs_from = static_cast<int64_t>(context.size());
            Json k = what;
            k["kind"] = "choice";
            k["label"] = labels[li];
            items.push_back(WorkItem{.result = ri, .label = static_cast<int>(li), .request = lr, .key = sha256_hex(k.dump(-1, ' ', false, Json::error_handler_t::replace)),
                                     .label_from = static_cast<int64_t>(context.size())});
          }
        }
      }
    }
    return {};
  }

  // Runs `items` through `provider`, at most `window` at once; fills each item, caches it.
  core::Status execute(router::Provider& provider, bool local, std::vector<WorkItem>& items, size_t window, CandidateRun& out) {
    auto collector = std::make_shared<Collector>();
    std::vector<size_t> todo;
    for (size_t i = 0; i < items.size(); ++i) {
      if (options_.use_cache && cache_ != nullptr) {
        if (auto hit = cache_->get(items[i].key)) {
          restore(*hit, items[i]);
          mark_done(items[i], out, true);
          continue;
        }
      }
      todo.push_back(i);
    }
    size_t next = 0, running = 0;
    const double cpu0 = cpu_seconds();
    int64_t tokens_total = 0;
    std::vector<size_t> finished;
    while (next < todo.size() || running > 0) {
      while (next < todo.size() && running < window && !stopped()) {
        WorkItem& it = items[todo[next++]];
        it.sink = std::make_shared<ItemSink>(collector, static_cast<size_t>(&it - items.data()));
        it.sent = Clock::now();
        auto sub = provider.submit(it.request, it.sink);
        if (auto* e = std::get_if<router::ApiError>(&sub)) {
          it.error = e->message;
          finished.push_back(static_cast<size_t>(&it - items.data()));
          continue;
        }
        ++running;
      }
      if (running == 0) {
        if (stopped()) break;
        continue;
      }
      std::pair<size_t, engine::Event> ev;
      if (!collector->pop(ev, std::chrono::milliseconds(200))) {
        if (stopped()) {
          for (size_t i : todo) {
            if (items[i].sink) items[i].sink->cancel();
          }
          provider.cancel_running();
        }
        continue;
      }
      WorkItem& it = items[ev.first];
      engine::Event& e = ev.second;
      if (e.kind == engine::Event::Kind::kToken) {
        if (!it.got_first) it.first = Clock::now(), it.got_first = true;
        it.text += e.text;
        if (e.has_token) it.tokens.push_back(std::move(e.sampled));
        if (!e.prompt_logprobs.empty()) take_prompt_logprobs(it, e);
        continue;
      }
      --running;
      if (e.kind == engine::Event::Kind::kError) {
        it.error = e.text.empty() ? "the request failed" : e.text;
      } else {
        if (!e.prompt_logprobs.empty()) take_prompt_logprobs(it, e);
        it.stats = e.stats;
        if (e.finish == engine::FinishReason::kCancelled) it.error = "cancelled";
      }
      finished.push_back(ev.first);
      tokens_total += it.stats.n_prompt - it.stats.n_cached + it.stats.n_generated;
      if (it.error != "cancelled") {
        // Settle what is done so far; cost is apportioned below.
        pending_cost_.push_back(ev.first);
      }
      flush(items, finished, out);
    }
    // Local compute is priced by the CPU time it took, shared among the items by their tokens.
    const double cpu = cpu_seconds() - cpu0;
    for (size_t i : pending_cost_) {
      WorkItem& it = items[i];
      const double share = tokens_total > 0 ? static_cast<double>(it.stats.n_prompt - it.stats.n_cached + it.stats.n_generated) /
                                                  static_cast<double>(tokens_total)
                                            : 0;
      const double cost = local ? cpu * share * suite_.local_per_core_hour / 3600.0
                                                             : provider.info().cost_usd(it.stats.n_prompt, it.stats.n_generated, 0);
      out.cases[it.result].cost_usd += cost;
      if (cache_ != nullptr && it.error.empty()) (void)cache_->put(it.key, save(it, cost));
    }
    pending_cost_.clear();
    flush(items, finished, out);
    out.computed += static_cast<int64_t>(std::count_if(todo.begin(), todo.end(), [&](size_t i) { return items[i].error.empty(); }));
    // Interrupted: only the cases whose every request ended (not cancelled) are reported.
    std::vector<CaseResult> kept;
    for (size_t i = 0; i < out.cases.size(); ++i) {
      if (remaining_[i] == 0 && !cancelled_[i]) kept.push_back(std::move(out.cases[i]));
    }
    out.cases = std::move(kept);
    return {};
  }

  static void take_prompt_logprobs(WorkItem& it, const engine::Event& e) {
    double sum = 0;
    for (const sample::Sampled& s : e.prompt_logprobs) sum += s.logprob;
    it.label_logprob = sum;
  }

  Json save(const WorkItem& it, double cost) const {
    Json j{{"text", it.text}, {"prompt_tokens", it.stats.n_prompt}, {"completion_tokens", it.stats.n_generated},
           {"ttft_ms", it.got_first ? ms_between(it.sent, it.first) : 0.0},
           {"latency_ms", it.stats.t_end != Clock::time_point{} ? ms_between(it.stats.t_admitted != Clock::time_point{} ? it.stats.t_admitted : it.sent, it.stats.t_end)
                                                                 : ms_between(it.sent, Clock::now())},
           {"cost_usd", cost}, {"label_logprob", it.label_logprob}};
    if (it.stats.t_admitted != Clock::time_point{} && it.got_first) j["ttft_ms"] = ms_between(it.stats.t_admitted, it.stats.t_first_token);
    Json lp = Json::array();
    for (const sample::Sampled& s : it.tokens) lp.push_back(s.logprob);
    j["logprobs"] = lp;
    return j;
  }

  static void restore(const Json& j, WorkItem& it) {
    it.text = j.value("text", "");
    it.stats.n_prompt = j.value("prompt_tokens", int64_t{0});
    it.stats.n_generated = j.value("completion_tokens", int64_t{0});
    it.label_logprob = j.value("label_logprob", 0.0);
    it.restored = j;
  }

  // Fills the results of finished items (a case is complete when all its items are).
  void flush(std::vector<WorkItem>& items, std::vector<size_t>& finished, CandidateRun& out) {
    for (size_t i : finished) mark_done(items[i], out, false);
    finished.clear();
  }

  void mark_done(WorkItem& it, CandidateRun& out, bool cached) {
    if (it.done) return;
    it.done = true;
    CaseResult& r = out.cases[it.result];
    r.cached = cached && (r.cached || !started_[it.result]);
    started_[it.result] = true;
    if (it.error == "cancelled") cancelled_[it.result] = true;
    if (!it.error.empty()) r.error = it.error;
    const Json saved = cached ? it.restored : save(it, 0);
    if (it.label < 0) {
      r.output = it.text;
      r.prompt_tokens = saved.value("prompt_tokens", int64_t{0});
      r.completion_tokens = saved.value("completion_tokens", int64_t{0});
      r.ttft_ms = saved.value("ttft_ms", 0.0);
      r.latency_ms = saved.value("latency_ms", 0.0);
      if (cached) r.cost_usd += saved.value("cost_usd", 0.0);
      const Json& lp = saved["logprobs"];
      if (lp.is_array() && !lp.empty()) {
        double sum = 0, least = 0;
        for (const Json& v : lp) sum += v.get<double>(), least = std::min(least, v.get<double>());
        r.confidence.mean_logprob = sum / static_cast<double>(lp.size());
        r.confidence.min_logprob = least;
      }
    } else {
      if (cached) r.cost_usd += saved.value("cost_usd", 0.0);
      const Case& kase = suite_.cases[r.case_index];
      const std::vector<std::string> labels = choice_labels(*choice_scorer(suite_.scorers_of(kase)), kase);
      r.label_logprobs.emplace_back(labels[static_cast<size_t>(it.label)], it.label_logprob);
    }
    if (--remaining_[it.result] == 0) complete(r, out);
  }

  void complete(CaseResult& r, CandidateRun& out) {
    const Case& kase = suite_.cases[r.case_index];
    if (!r.label_logprobs.empty()) {
      // Labels in their order, the best first; ties go to the earlier label.
      std::vector<std::pair<std::string, double>> sorted = r.label_logprobs;
      const std::vector<std::string> labels = choice_labels(*choice_scorer(suite_.scorers_of(kase)), kase);
      std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
        if (a.second != b.second) return a.second > b.second;
        return std::find(labels.begin(), labels.end(), a.first) < std::find(labels.begin(), labels.end(), b.first);
      });
      r.label_logprobs = sorted;
      r.confidence.margin = sorted.size() > 1 ? sorted[0].second - sorted[1].second : 0.0;
      if (!needs_generation(suite_.scorers_of(kase))) r.output = sorted[0].first;
    }
    score(kase, r);
    ++done_;
    if (r.passed) ++passed_;
    if (options_.on_progress) options_.on_progress(out.candidate, done_, out.cases.size(), passed_);
  }

  void begin(const std::vector<WorkItem>& items, size_t n_results) {
    remaining_.assign(n_results, 0);
    started_.assign(n_results, false);
    cancelled_.assign(n_results, false);
    for (const WorkItem& it : items) ++remaining_[it.result];
    done_ = passed_ = 0;
  }

  bool stopped() const { return options_.interrupted != nullptr && options_.interrupted->load(); }

  core::Status run_local(const Candidate& c, CandidateRun& out) {
    if (!std::filesystem::exists(c.model)) return core::make_error("{}: no such model file", c.model);
    std::string hash, adapter_hash;
    if (cache_ != nullptr) {
      auto h = cache_->file_hash(c.model);
      if (!h) return h.error();
      hash = *h;
      if (!c.adapter.empty()) {
        auto a = cache_->file_hash(c.adapter);
        if (!a) return a.error();
        adapter_hash = *a;
      }
    }
    auto path = prepare_model(c, hash.empty() ? "nocache" : hash, options_);
    if (!path) return path.error();
    out.path = *path;
    std::error_code ec;
    out.size_bytes = std::filesystem::file_size(*path, ec);
    if (!c.adapter.empty()) out.size_bytes += std::filesystem::file_size(c.adapter, ec);
    LocalEnv env;
    const int64_t n_ctx = suite_.ctx;
    OWL_TRY(load_local(*path, c, options_, n_ctx, env));
    const std::string identity = fmt::format("local:{}:{}:{}:{}", hash, c.quant, adapter_hash, c.adapter_scale);
    std::vector<WorkItem> items;
    OWL_TRY(plan(c, identity, env.provider.get(), out, items));
    begin(items, out.cases.size());
    const size_t window = static_cast<size_t>(std::max(1, options_.parallel)) * 4;
    return execute(*env.provider, true, items, window, out);
  }

  core::Status run_hosted(const Candidate& c, CandidateRun& out) {
    const router::ModelSpec& spec = *c.hosted;
    const char* key = spec.api_key_env.empty() ? nullptr : std::getenv(spec.api_key_env.c_str());
    if (!spec.api_key_env.empty() && key == nullptr) {
      return core::make_error("the environment variable {} (the API key) is not set", spec.api_key_env);
    }
    router::HostedProvider provider(spec, key ? key : "", 0);
    const std::string identity = fmt::format("hosted:{}:{}", spec.base_url, spec.model);
    std::vector<WorkItem> items;
    OWL_TRY(plan(c, identity, nullptr, out, items));
    begin(items, out.cases.size());
    OWL_TRY(execute(provider, false, items, static_cast<size_t>(std::max(1, options_.parallel)), out));
    // An upstream that answered nothing is down: the candidate failed.
    const bool all_failed = !out.cases.empty() && std::all_of(out.cases.begin(), out.cases.end(), [](const CaseResult& r) { return !r.error.empty(); });
    if (all_failed) return core::make_error("every request failed; the first: {}", out.cases.front().error);
    return {};
  }

  const Suite& suite_;
  const RunOptions& options_;
  ResultCache* cache_;
  std::map<std::string, std::unique_ptr<Judge>> judges_;
  std::vector<int> remaining_;
  std::vector<bool> started_;
  std::vector<bool> cancelled_;
  std::vector<size_t> pending_cost_;
  size_t done_ = 0, passed_ = 0;
};

}  // namespace

void decide_case(const std::vector<ScorerSpec>& scorers, double case_pass, CaseResult& r) {
  double wsum = 0, wscore = 0, wpass = 0;
  bool gates = true;
  for (size_t i = 0; i < scorers.size() && i < r.scores.size(); ++i) {
    const double w = scorers[i].weight;
    wsum += w;
    wscore += w * r.scores[i].value;
    if (r.scores[i].passed) wpass += w;
    if (scorers[i].required && !r.scores[i].passed) gates = false;
  }
  r.score = wsum > 0 ? wscore / wsum : 0;
  const double share = wsum > 0 ? wpass / wsum : 0;
  r.passed = r.error.empty() && gates && share + 1e-12 >= case_pass;
}

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') return std::string(x) + "/owl/eval";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.cache/owl/eval";
  return ".owl-eval-cache";
}

core::Result<std::vector<CandidateRun>> run_suite(const Suite& suite, const RunOptions& options) {
  for (const std::string& id : options.only) {
    if (std::none_of(suite.candidates.begin(), suite.candidates.end(), [&](const Candidate& c) { return c.id == id; })) {
      std::string ids;
      for (const Candidate& c : suite.candidates) ids += (ids.empty() ? "" : ", ") + c.id;
      return core::make_error("--only {}: no such candidate (the suite has: {})", id, ids);
    }
  }
  std::unique_ptr<ResultCache> cache;
  {
    auto c = ResultCache::open((std::filesystem::path(options.cache_dir) / "results.sqlite").string());
    if (!c) return c.error();
    cache = std::move(*c);
  }
  Runner runner(suite, options, cache.get());
  std::vector<CandidateRun> runs;
  for (const Candidate& c : suite.candidates) {
    if (!options.only.empty() && std::find(options.only.begin(), options.only.end(), c.id) == options.only.end()) continue;
    if (options.interrupted != nullptr && options.interrupted->load()) break;
    runs.push_back(runner.run(c));
  }
  return runs;
}

}  // namespace owl::eval
