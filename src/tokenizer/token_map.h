// Open-addressing hash maps for the tokenizer's hot paths: token text -> id, and BPE merge pairs
// -> (rank, merged symbol). No allocation on lookup; keys are views into storage the owner keeps
// alive (the vocabulary's text arena).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace owl::tokenizer {

// 64-bit hash of a short byte string (tokens are mostly < 16 bytes): 8-byte words folded with a
// multiply-xorshift mix. Not cryptographic; the keys are fixed at load time.
inline uint64_t hash_bytes(const char* data, size_t size) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (size * kMul);
  while (size >= 8) {
    uint64_t w;
    std::memcpy(&w, data, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    data += 8;
    size -= 8;
  }
  if (size > 0) {
    uint64_t w = 0;
    std::memcpy(&w, data, size);
    h = (h ^ w ^ (uint64_t{size} << 59)) * kMul;
    h ^= h >> 29;
  }
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 32);
}

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  return x ^ (x >> 33);
}

// String view -> int32 value. The table holds at most half as many keys as slots.
class StringMap {
 public:
  void reserve(size_t n_keys) {
    size_t n_slots = 16;
    while (n_slots < 2 * n_keys) n_slots *= 2;
    slots_.assign(n_slots, Slot{});
    mask_ = n_slots - 1;
    size_ = 0;
  }

  // Inserts `key` -> `value` unless the key is present; returns the value now stored.
  int32_t insert(std::string_view key, int32_t value) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    const uint64_t h = hash_bytes(key.data(), key.size());
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.data == nullptr) {
        s = Slot{h, key.data(), static_cast<uint32_t>(key.size()), value};
        ++size_;
        return value;
      }
      if (s.hash == h && s.size == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0) {
        return s.value;
      }
    }
  }

  // The value of `key`, or -1.
  int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash_bytes(key.data(), key.size());
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.data == nullptr) return -1;
      if (s.hash == h && s.size == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0) {
        return s.value;
      }
    }
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    const char* data = nullptr;  // nullptr marks an empty slot (keys are never null: "" uses "")
    uint32_t size = 0;
    int32_t value = -1;
  };

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& s : old) {
      if (s.data != nullptr) insert(std::string_view(s.data, s.size), s.value);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// (left symbol, right symbol) -> (merge rank, merged symbol), for byte-level BPE.
class PairMap {
 public:
  struct Value {
    int32_t rank = -1;
    int32_t merged = -1;
  };

  void reserve(size_t n_keys) {
    size_t n_slots = 16;
    while (n_slots < 2 * n_keys) n_slots *= 2;
    slots_.assign(n_slots, Slot{});
    mask_ = n_slots - 1;
  }

  // Keeps the first value inserted for a pair (llama.cpp's bpe_ranks.emplace).
  void insert(int32_t left, int32_t right, Value value) {
    const uint64_t key = pack(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value.rank < 0) {
        s = Slot{key, value};
        return;
      }
      if (s.key == key) return;
    }
  }

  // rank < 0 when the pair never merges.
  Value find(int32_t left, int32_t right) const {
    if (slots_.empty()) return {};
    const uint64_t key = pack(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value.rank < 0) return {};
      if (s.key == key) return s.value;
    }
  }

 private:
  struct Slot {
    uint64_t key = 0;
    Value value;
  };
  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace owl::tokenizer
