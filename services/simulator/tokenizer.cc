#include "services/simulator/tokenizer.h"

namespace mstperf::simulator {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Calls fn(piece) for every token of `text`.
template <typename Fn>
void ForEachToken(std::string_view text, Fn fn) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && IsSpace(text[i])) ++i;
    size_t start = i;
    while (i < n && !IsSpace(text[i])) {
      ++i;
      if (i - start == kMaxTokenBytes) {
        fn(text.substr(start, i - start));
        start = i;
      }
    }
    if (i > start) fn(text.substr(start, i - start));
  }
}

}  // namespace

std::vector<int32_t> Tokenize(std::string_view text) {
  std::vector<int32_t> ids;
  ForEachToken(text, [&](std::string_view piece) {
    uint32_t h = 2166136261u;
    for (unsigned char c : piece) {
      h ^= c;
      h *= 16777619u;
    }
    ids.push_back(static_cast<int32_t>(h % kVocabSize));
  });
  return ids;
}

int CountTokens(std::string_view text) {
  int count = 0;
  ForEachToken(text, [&](std::string_view) { ++count; });
  return count;
}

}  // namespace mstperf::simulator
