#ifndef MSTPERF_SERVICES_LOADGEN_PROMPTS_H_
#define MSTPERF_SERVICES_LOADGEN_PROMPTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mstperf::loadgen {

// Words of a corpus, in order. A .jsonl file contributes the "text" (or "prompt") field of each
// line; any other file is plain text. Words are split on whitespace; words longer than 15 bytes
// are dropped (tokenizers split them unpredictably). INVALID_ARGUMENT naming
// prompt.corpus_path when the file cannot be read or holds fewer than 16 words.
absl::StatusOr<std::vector<std::string>> LoadCorpusWords(const std::string& path);

// The built-in corpus: text written for mstperf (no download), a few hundred words of ordinary
// English prose about measuring servers.
std::vector<std::string> BuiltinCorpusWords();

// Counts tokens of a text in the target's tokenizer. `chat`: the text is the content of one user
// message of a chat request (so the chat template's tokens are included); otherwise a
// completions prompt with the special tokens the server adds (BOS).
using TokenizeFn = std::function<absl::StatusOr<uint32_t>(std::string_view text, bool chat)>;

// Builds a prompt per request: unique (a random four-word opening drawn from the request's
// index, then the corpus from a random position), of a given length in the target's tokens.
//
// The length model is additive: a prompt is a fixed head word plus " word" pieces, and a
// tokenizer that pre-splits on spaces (BPE, SentencePiece, the simulator's) counts it as
// tokens(head, with the template and special tokens) + the sum of tokens(" word"). The counts
// come from the target's /tokenize (Calibrate) and the model is then checked on sample prompts
// of several lengths; when it holds, prompts are exact (exact() == true). Without a tokenizer,
// counts are estimated from word lengths and exact() is false. Thread-compatible; Build() is
// const and cheap (one pass over the prompt's words).
class PromptBuilder {
 public:
  // Estimated counts (no tokenizer): about one token per four bytes of a word.
  static PromptBuilder Approximate(std::vector<std::string> words, bool chat);
  // Asks `tokenize` for every distinct word (at most max_vocabulary of them) and the head, then
  // checks the model on a few sample prompts. Fails when the tokenizer fails.
  static absl::StatusOr<PromptBuilder> Calibrate(std::vector<std::string> words, bool chat,
                                                 const TokenizeFn& tokenize,
                                                 size_t max_vocabulary = 2000);

  // The prompt text (not escaped) of about `tokens` tokens (exactly, when exact()), unique per
  // (seed, index). At least the head word whatever `tokens` is.
  std::string Build(uint64_t seed, uint64_t index, uint32_t tokens) const;
  // The length the model predicts for a text made of head + pieces (for tests).
  uint32_t overhead() const { return overhead_; }
  bool exact() const { return exact_; }
  // Why calibration found the model inexact (empty when exact or approximate).
  const std::string& note() const { return note_; }
  size_t vocabulary_size() const { return vocab_.size(); }

 private:
  PromptBuilder() = default;
  // Fills vocab_/sequence_ from words; returns the distinct words in first-seen order.
  void Index(const std::vector<std::string>& words, size_t max_vocabulary);
  void Finalize();

  static constexpr std::string_view kHead = "Text:";
  std::vector<std::string> vocab_;        // distinct words
  std::vector<uint32_t> vocab_tokens_;    // tokens of " " + word
  std::vector<uint32_t> sequence_;        // the corpus as vocabulary ids
  std::vector<uint32_t> one_token_;       // vocabulary ids of one-token words (fillers)
  uint32_t overhead_ = 0;                 // tokens of the head (with template / specials)
  bool exact_ = false;
  std::string note_;
};

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_PROMPTS_H_
