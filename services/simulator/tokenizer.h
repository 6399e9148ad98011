#ifndef MSTPERF_SERVICES_SIMULATOR_TOKENIZER_H_
#define MSTPERF_SERVICES_SIMULATOR_TOKENIZER_H_

// The simulator's deterministic tokenizer, shared by /tokenize, prompt_tokens in `usage`, and
// the context-length check, so that a client that builds a prompt of N tokens with /tokenize
// is billed exactly N.
//
// A token is a run of at most kMaxTokenBytes non-whitespace bytes: whitespace (space, \t, \n,
// \r, \f, \v) separates tokens and costs nothing, and a longer run is cut every kMaxTokenBytes
// bytes. "hello world" is 2 tokens, " x  y\n" is 2, "" is 0, 40 letters without a space are 3.
// A token's id is the 32-bit FNV-1a hash of its bytes modulo kVocabSize.
// A chat prompt is each message's role followed by its content, so it costs
// sum(1 + tokens(content)) for one-word roles.

#include <cstdint>
#include <string_view>
#include <vector>

namespace mstperf::simulator {

inline constexpr int kMaxTokenBytes = 16;
inline constexpr int kVocabSize = 32000;

std::vector<int32_t> Tokenize(std::string_view text);
int CountTokens(std::string_view text);

}  // namespace mstperf::simulator

#endif  // MSTPERF_SERVICES_SIMULATOR_TOKENIZER_H_
