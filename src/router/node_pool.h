// A model served by several owl nodes (`nodes:` in the config) as one Provider: the gateway side
// of many machines. Each request goes to the node with the least load per slot (its waiting and
// running requests, read from its /health every second, plus what this gateway sent it since),
// nodes whose /health fails last. A node that fails before any of the answer was relayed
// (refused, 429, 5xx, a timeout, a node that died after accepting) hands the request to the next
// node; an answer that already streamed tokens is not restarted elsewhere: it ends with an error
// event. Each node is a HostedProvider (its retries, timeouts and circuit breaker apply).
//
// Nodes are listed (`nodes: [URL, ...]`) or discovered (`nodes_dns: URL`: every address the
// URL's host name resolves to, resolved again at each poll, as a Kubernetes headless service
// names its pods); a node that leaves DNS is asked no more, and its running answers finish.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "router/config.h"
#include "router/hosted_provider.h"
#include "router/in_flight.h"
#include "router/provider.h"

namespace owl::router {

// What the gateway knows of one node.
struct NodeState {
  std::string url;
  bool up = false;          // its last /health answered 200
  int64_t queued = 0;       // from its last /health
  int64_t running = 0;
  int64_t slots = 0;
  int64_t sent = 0;         // requests this gateway has running there
  int64_t answered = 0;     // requests it answered (for tests and the log)
};

// Threading: every method may be called from any thread. The destructor stops the health
// poller and cancels and waits for the requests still being relayed.
class NodePool : public Provider {
 public:
  // `spec.nodes` are the base URLs, `spec.nodes_dns` the names to resolve; `api_key` is sent to
  // every node.
  NodePool(const ModelSpec& spec, const std::string& api_key, int64_t created, HostedOptions options = {},
           std::chrono::milliseconds poll = std::chrono::milliseconds(1000));
  ~NodePool() override;
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  const ModelInfo& info() const override { return info_; }
  std::variant<Submission, ApiError> submit(const CompletionRequest& request, std::shared_ptr<engine::EventSink> sink) override;
  void cancel_running() override;
  // The nodes' requests waiting and running, and their slots, summed: the gateway's /metrics
  // report the queue depth of the pool (what an autoscaler reads).
  engine::Gauges gauges() const override;

  std::vector<NodeState> states() const;
  // Reads every node's /health now (the poller does it every `poll`).
  void refresh();

 private:
  struct Node;
  struct Relay;
  // The nodes, least loaded first.
  std::vector<std::shared_ptr<Node>> order() const;
  std::shared_ptr<Node> make_node(const std::string& url, bool discovered) const;
  // Adds the nodes `nodes_dns` resolves to now and drops discovered ones it no longer does.
  void discover();
  // Submits to the nodes of `order` from `next` on until one takes the request.
  std::variant<Submission, ApiError> try_nodes(const CompletionRequest& request, const std::shared_ptr<Relay>& relay);
  void relay(std::shared_ptr<Relay> r);

  ModelSpec spec_;
  std::string api_key_;
  int64_t created_ = 0;
  HostedOptions options_;
  ModelInfo info_;
  mutable std::mutex mutex_;  // guards nodes_ and the nodes' load
  std::vector<std::shared_ptr<Node>> nodes_;
  std::mutex poll_mutex_;
  std::condition_variable poll_wake_;
  bool stopping_ = false;     // guarded by poll_mutex_
  std::thread poller_;
  InFlight in_flight_;
};

}  // namespace owl::router
