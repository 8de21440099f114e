// A constraint on what a sequence may generate (a grammar, a JSON schema): one link of the
// sampler chain (llama.cpp's grammar sampler is one too). The sampler asks it to mask the
// candidates before anything else looks at them, and tells it each token the sequence takes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

namespace owl::sample {

// Not thread-safe: one per sequence, used by the thread that samples it.
class Constraint {
 public:
  virtual ~Constraint() = default;
  // logits [n_vocab], indexed by token: sets the logit of every token the constraint forbids
  // now to -infinity. At least one token must stay allowed.
  virtual void mask(std::span<float> logits) = 0;
  // The sequence took `token` (generated, never a prompt token).
  virtual void accept(int32_t token) = 0;
};

// Makes a fresh constraint for each sequence of a request.
using ConstraintFactory = std::function<std::unique_ptr<Constraint>()>;

}  // namespace owl::sample
