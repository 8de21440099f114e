#include "router/node_pool.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <set>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace owl::router {
namespace {

using engine::Event;
using std::chrono::milliseconds;

constexpr milliseconds kPoll{50};            // how often a relay looks at the client's cancellation
constexpr milliseconds kCancelWait{10000};   // how long a failed node's stream may take to end
constexpr int kHealthTimeoutMs = 1000;

// A failure another node may not have: the node's own (5xx, 429, a timeout, refused).
bool retryable(const ApiError& e) { return e.status >= 500 || e.status == 429 || e.status == 408; }

// Every address `url`'s host resolves to, as base URLs with its port ("http://10.0.0.5:8080").
std::set<std::string> resolve(const std::string& url) {
  std::set<std::string> out;
  const size_t host_at = url.find("://") + 3;
  const size_t colon = url.find(':', host_at);
  const std::string host = url.substr(host_at, colon == std::string::npos ? std::string::npos : colon - host_at);
  const std::string port = colon == std::string::npos ? "80" : url.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char ip[NI_MAXHOST];
    if (::getnameinfo(a->ai_addr, a->ai_addrlen, ip, sizeof ip, nullptr, 0, NI_NUMERICHOST) != 0) continue;
    const bool v6 = a->ai_family == AF_INET6;
    out.insert(fmt::format("http://{}{}{}:{}", v6 ? "[" : "", ip, v6 ? "]" : "", port));
  }
  ::freeaddrinfo(found);
  return out;
}

}  // namespace

struct NodePool::Node {
  std::string url;
  bool discovered = false;  // from nodes_dns: dropped when its address leaves DNS
  std::unique_ptr<HostedProvider> provider;
  // Guarded by NodePool::mutex_.
  bool up = true;  // until the first /health says otherwise
  int64_t queued = 0, running = 0, slots = 1, sent = 0, answered = 0;
};

// One request being relayed from a node to its client.
struct NodePool::Relay {
  CompletionRequest request;
  std::shared_ptr<engine::EventSink> client;
  std::vector<std::shared_ptr<Node>> order;  // the nodes to try, in order
  size_t next = 0;                           // the next of `order` to try
  std::shared_ptr<Node> node;                // the node answering now
  std::shared_ptr<engine::RequestStream> stream;
  std::string failures;       // what each node that failed said
};

NodePool::NodePool(const ModelSpec& spec, const std::string& api_key, int64_t created, HostedOptions options, milliseconds poll)
    : spec_(spec), api_key_(api_key), created_(created), options_(options) {
  for (const std::string& url : spec.nodes) nodes_.push_back(make_node(url, false));
  ModelSpec first = spec;
  first.base_url = (spec.nodes.empty() ? spec.nodes_dns : spec.nodes[0]) + "/v1";
  info_ = HostedProvider(first, "", created, options).info();
  info_.id = spec.name;
  info_.owned_by = "owl-nodes";
  refresh();
  poller_ = std::thread([this, poll] {
    std::unique_lock<std::mutex> lock(poll_mutex_);
    while (!poll_wake_.wait_for(lock, poll, [&] { return stopping_; })) {
      lock.unlock();
      refresh();
      lock.lock();
    }
  });
}

std::shared_ptr<NodePool::Node> NodePool::make_node(const std::string& url, bool discovered) const {
  ModelSpec one = spec_;
  one.base_url = url + "/v1";
  one.nodes.clear();
  one.nodes_dns.clear();
  auto node = std::make_shared<Node>();
  node->url = url;
  node->discovered = discovered;
  node->provider = std::make_unique<HostedProvider>(one, api_key_, created_, options_);
  return node;
}

void NodePool::discover() {
  if (spec_.nodes_dns.empty()) return;
  const std::set<std::string> now = resolve(spec_.nodes_dns);
  if (now.empty()) return;  // a failed lookup keeps the nodes known so far
  std::lock_guard<std::mutex> lock(mutex_);
  // A node dropped here lives on in the relays that still hold it, until their answers end.
  std::erase_if(nodes_, [&](const std::shared_ptr<Node>& n) { return n->discovered && !now.contains(n->url); });
  for (const std::string& url : now) {
    if (std::none_of(nodes_.begin(), nodes_.end(), [&](const auto& n) { return n->url == url; })) nodes_.push_back(make_node(url, true));
  }
}

NodePool::~NodePool() {
  {
    std::lock_guard<std::mutex> lock(poll_mutex_);
    stopping_ = true;
  }
  poll_wake_.notify_all();
  poller_.join();
  in_flight_.cancel_and_wait();
}

void NodePool::refresh() {
  discover();
  std::vector<std::shared_ptr<Node>> nodes;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    nodes = nodes_;
  }
  for (const auto& node : nodes) {
    httplib::Client client(node->url);
    client.set_connection_timeout(0, kHealthTimeoutMs * 1000);
    client.set_read_timeout(0, kHealthTimeoutMs * 1000);
    auto res = client.Get("/health");
    NodeState seen{.up = res && res->status == 200};
    if (seen.up) {
      const auto j = nlohmann::json::parse(res->body, nullptr, false);
      if (j.is_object()) {
        seen.queued = j.value("queued", int64_t{0});
        seen.running = j.value("running", int64_t{0});
        seen.slots = j.value("slots", int64_t{1});
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    node->up = seen.up;
    node->queued = seen.queued;
    node->running = seen.running;
    node->slots = std::max<int64_t>(1, seen.slots);
  }
}

std::vector<std::shared_ptr<NodePool::Node>> NodePool::order() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<double, std::shared_ptr<Node>>> scored;
  for (const auto& n : nodes_) {
    // What this gateway sent since the last /health may not be in its counts yet: count both,
    // which errs towards spreading.
    scored.emplace_back(static_cast<double>(n->queued + n->running + n->sent) / static_cast<double>(n->slots) + (n->up ? 0.0 : 1e9), n);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::shared_ptr<Node>> out;
  for (auto& [score, n] : scored) out.push_back(std::move(n));
  return out;
}

std::variant<Submission, ApiError> NodePool::try_nodes(const CompletionRequest& request, const std::shared_ptr<Relay>& r) {
  while (r->next < r->order.size()) {
    const std::shared_ptr<Node> chosen = r->order[r->next++];
    Node& node = *chosen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++node.sent;
    }
    auto stream = std::make_shared<engine::RequestStream>(request.n);
    auto submitted = node.provider->submit(request, stream);
    if (auto* e = std::get_if<ApiError>(&submitted)) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --node.sent;
        if (retryable(*e)) node.up = false;  // until its next /health
      }
      r->failures += fmt::format("{}{}: {}", r->failures.empty() ? "" : "; ", node.url, e->message);
      if (!retryable(*e)) return *e;
      continue;
    }
    r->node = chosen;
    r->stream = std::move(stream);
    return std::get<Submission>(submitted);
  }
  return ApiError{.status = 502, .message = fmt::format("no node of '{}' could answer: {}", info_.id, r->failures), .type = "server_error",
                  .code = "nodes_unavailable", .retry_after_s = 1};
}

std::variant<Submission, ApiError> NodePool::submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) {
  auto r = std::make_shared<Relay>();
  r->request = request;
  r->client = sink;
  r->order = order();
  auto submitted = try_nodes(request, r);
  if (std::holds_alternative<ApiError>(submitted)) return submitted;
  in_flight_.start(sink, [this, r] { relay(r); });
  return submitted;
}

void NodePool::relay(std::shared_ptr<Relay> r) {
  for (;;) {
    bool relayed = false, failed = false, cancelled = false;
    Event e;
    while (!r->stream->finished()) {
      if (!cancelled && r->client->cancelled()) {
        cancelled = true;
        r->stream->cancel();
      }
      if (!r->stream->pop(e, kPoll)) continue;
      if (e.kind == Event::Kind::kError && !relayed && !cancelled) {
        failed = true;
        r->failures += fmt::format("{}{}: {}", r->failures.empty() ? "" : "; ", r->node->url, e.text);
        break;
      }
      relayed = true;
      r->client->push(std::move(e));
    }
    if (failed) {  // the node took the request and failed before any of it was relayed
      r->stream->cancel();
      const auto until = engine::Clock::now() + kCancelWait;
      while (!r->stream->finished() && engine::Clock::now() < until) r->stream->pop(e, kPoll);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Node& node = *r->node;
      --node.sent;
      if (!failed) ++node.answered;
      else node.up = false;  // until its next /health
    }
    if (!failed) return;
    auto next = try_nodes(r->request, r);
    if (auto* error = std::get_if<ApiError>(&next)) {
      for (int i = 0; i < r->request.n; ++i) {
        r->client->push(Event{.kind = Event::Kind::kError, .index = i, .text = error->message});
      }
      return;
    }
  }
}

void NodePool::cancel_running() {
  std::vector<std::shared_ptr<Node>> nodes;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    nodes = nodes_;
  }
  for (const auto& node : nodes) node->provider->cancel_running();
  in_flight_.cancel_all();
}

engine::Gauges NodePool::gauges() const {
  std::lock_guard<std::mutex> lock(mutex_);
  engine::Gauges g;
  for (const auto& n : nodes_) {
    if (!n->up) continue;
    g.queued += n->queued;
    g.running += n->running;
    g.n_slots += n->slots;
  }
  return g;
}

std::vector<NodeState> NodePool::states() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<NodeState> out;
  for (const auto& n : nodes_) {
    out.push_back(NodeState{.url = n->url, .up = n->up, .queued = n->queued, .running = n->running, .slots = n->slots,
                            .sent = n->sent, .answered = n->answered});
  }
  return out;
}

}  // namespace owl::router
