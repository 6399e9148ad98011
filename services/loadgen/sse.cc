#include "services/loadgen/sse.h"

#include <algorithm>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

namespace mstperf::loadgen {

// ---------------------------------------------------------------------------------------------
// SseParser

void SseParser::Feed(std::string_view bytes, Callback on_event) {
  size_t pos = 0;
  if (skip_lf_ && !bytes.empty()) {
    if (bytes[0] == '\n') pos = 1;
    skip_lf_ = false;
  }
  const char* const base = bytes.data();
  const char* const stop = base + bytes.size();
  // The next '\r' of the piece, searched once and again only after it is passed: most streams
  // have none, so a line end is one memchr for '\n'.
  const char* next_cr = static_cast<const char*>(std::memchr(base + pos, '\r', stop - base - pos));
  while (pos < bytes.size()) {
    const char* begin = base + pos;
    if (next_cr != nullptr && next_cr < begin) {
      next_cr = static_cast<const char*>(std::memchr(begin, '\r', stop - begin));
    }
    const char* limit = next_cr != nullptr ? next_cr : stop;
    const char* end = static_cast<const char*>(std::memchr(begin, '\n', limit - begin));
    const bool is_cr = end == nullptr && next_cr != nullptr;
    if (is_cr) end = next_cr;
    if (end == nullptr) {
      partial_.append(begin, stop - begin);
      break;
    }
    std::string_view line(begin, end - begin);
    if (!partial_.empty()) {
      partial_.append(line);
      Line(partial_, /*in_piece=*/false, on_event);
      partial_.clear();
    } else {
      Line(line, /*in_piece=*/true, on_event);
    }
    pos = end - base + 1;
    // The blank line that ends most events: dispatch without another search.
    if (!is_cr && pos < bytes.size() && bytes[pos] == '\n') {
      Dispatch(on_event);
      ++pos;
      continue;
    }
    if (is_cr) {
      if (pos < bytes.size()) {
        if (bytes[pos] == '\n') ++pos;
      } else {
        skip_lf_ = true;
      }
    }
  }
  // The piece's bytes go away: keep an event still being assembled.
  if (data_is_view_) {
    data_.assign(data_view_);
    data_is_view_ = false;
  }
}

bool SseParser::Finish(Callback on_event) {
  bool pending = !partial_.empty() || has_data_;
  if (!partial_.empty()) {
    std::string line;
    line.swap(partial_);
    Line(line, /*in_piece=*/false, on_event);
  }
  Dispatch(on_event);
  return pending;
}

void SseParser::Reset() {
  partial_.clear();
  data_.clear();
  data_view_ = {};
  data_is_view_ = false;
  event_.clear();
  has_data_ = false;
  skip_lf_ = false;
  events_ = 0;
}

void SseParser::Line(std::string_view line, bool in_piece, Callback on_event) {
  if (line.empty()) {
    Dispatch(on_event);
    return;
  }
  if (line[0] == ':') return;  // comment / keep-alive
  std::string_view field = line, value;
  if (line.size() >= 5 && std::memcmp(line.data(), "data:", 5) == 0) {  // the common line
    field = line.substr(0, 4);
    value = line.substr(5);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (!has_data_) {
      has_data_ = true;
      if (in_piece) {
        data_view_ = value;
        data_is_view_ = true;
      } else {
        data_.assign(value);
      }
      return;
    }
    if (data_is_view_) {
      data_.assign(data_view_);
      data_is_view_ = false;
    }
    data_.push_back('\n');
    data_.append(value);
  } else if (field == "event") {
    event_.assign(value);
  }
}

void SseParser::Dispatch(Callback on_event) {
  if (has_data_) {
    ++events_;
    on_event(SseEvent{event_, data_is_view_ ? data_view_ : std::string_view(data_)});
  }
  has_data_ = false;
  data_is_view_ = false;
  data_.clear();
  event_.clear();
}

// ---------------------------------------------------------------------------------------------
// ScanChunk: a single-pass, non-allocating JSON walker that reads only the fields it needs.

namespace {

constexpr int kMaxDepth = 64;

// key == literal, with the length known at compile time so the comparison is inlined.
template <size_t N>
inline bool Is(std::string_view key, const char (&literal)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), literal, N - 1) == 0;
}
constexpr size_t kMaxErrorMessage = 512;

using Value = ChunkScanner::Value;

// The closing quote of a string whose contents start at `p`, or nullptr when the string is
// unterminated or holds a raw control character. Escapes are skipped, not checked. Sixteen
// bytes at a time with SSE2 where there is room (most of an event's bytes are inside strings).
__attribute__((always_inline)) inline const char* StringEnd(const char* p, const char* end) {
  while (true) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    while (end - p >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
          _mm_cmpeq_epi8(_mm_max_epu8(v, control), control));  // unsigned v <= 0x1f
      const int mask = _mm_movemask_epi8(special);
      if (mask == 0) {
        p += 16;
        continue;
      }
      p += __builtin_ctz(static_cast<unsigned>(mask));
      break;
    }
#endif
    if (p >= end) return nullptr;
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"') return p;
    if (c == '\\') {
      p += 2;
      continue;
    }
    if (c < 0x20) return nullptr;
    ++p;
  }
}

// What the walker learns about a chunk for ChunkScanner's template, besides ChunkInfo: every
// scalar value it meets (position, kind, role) and which values set the usage numbers last.
struct Recording {
  std::vector<Value>* values = nullptr;
  int completion_writer = -1;
  int prompt_writer = -1;
};

class Scanner {
 public:
  explicit Scanner(std::string_view s, Recording* rec = nullptr)
      : base_(s.data()), p_(s.data()), end_(s.data() + s.size()), rec_(rec) {}

  bool Chunk(ChunkInfo* info) {
    Ws();
    if (!Peek('{')) return false;
    bool is_error_object = false;
    std::string_view message;
    bool ok = Object([&](std::string_view key) -> bool {
      if (Is(key, "choices")) return Choices(info);
      if (Is(key, "usage")) return Usage(info);
      if (Is(key, "error")) {
        info->error = true;
        return ErrorValue(info);
      }
      if (Is(key, "object")) {
        std::string_view v;
        if (Peek('"')) {
          const char* begin = p_;
          if (!String(&v)) return false;
          Rec(begin, Value::kString, Value::kObject);
          if (v == "error") is_error_object = true;
          return true;
        }
        return Skip(0);
      }
      if (Is(key, "message") && Peek('"')) return String(&message);  // unrecorded: a literal
      return Skip(0);
    });
    if (!ok) return false;
    Ws();
    if (p_ != end_) return false;  // trailing garbage
    if (is_error_object) {
      info->error = true;
      if (info->error_message.empty()) SetMessage(info, message);
    }
    return true;
  }

 private:
  __attribute__((always_inline)) void Ws() {
    const char* p = p_;
    if (p < end_ && static_cast<unsigned char>(*p) > ' ') return;  // the common case
    while (p < end_ && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    p_ = p;
  }
  __attribute__((always_inline)) bool Peek(char c) {
    Ws();
    return p_ < end_ && *p_ == c;
  }

  // Iterates an object's members; on_key must consume the value.
  template <typename F>
  bool Object(F&& on_key) {
    if (!Peek('{')) return false;
    ++p_;
    if (Peek('}')) {
      ++p_;
      return true;
    }
    while (true) {
      std::string_view key;
      if (!Peek('"') || !String(&key)) return false;
      if (!Peek(':')) return false;
      ++p_;
      Ws();
      if (!on_key(key)) return false;
      Ws();
      if (p_ >= end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      return false;
    }
  }

  template <typename F>
  bool Array(F&& on_element) {
    if (!Peek('[')) return false;
    ++p_;
    if (Peek(']')) {
      ++p_;
      return true;
    }
    while (true) {
      Ws();
      if (!on_element()) return false;
      Ws();
      if (p_ >= end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      return false;
    }
  }

  // A string's raw (still escaped) contents, validated for raw control characters.
  __attribute__((always_inline)) bool String(std::string_view* out) {
    const char* close = StringEnd(p_ + 1, end_);
    if (close == nullptr) return false;
    *out = std::string_view(p_ + 1, close - p_ - 1);
    p_ = close + 1;
    return true;
  }

  // Records a scalar value that ended at p_ (only when a recording is asked for).
  __attribute__((always_inline)) void Rec(const char* begin, uint8_t kind, uint8_t role) {
    if (rec_ != nullptr && rec_->values != nullptr) {
      rec_->values->push_back(Value{static_cast<uint32_t>(begin - base_),
                                    static_cast<uint32_t>(p_ - base_), kind, role, choice_,
                                    false});
    }
  }
  int NextIndex() const {
    return rec_ != nullptr && rec_->values != nullptr ? static_cast<int>(rec_->values->size())
                                                      : -1;
  }

  __attribute__((always_inline)) bool Number(uint64_t* value) {
    Ws();
    const char* start = p_;
    uint64_t v = 0;
    bool integral = true;
    if (p_ < end_ && *p_ == '-') {
      integral = false;
      ++p_;
    }
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') v = v * 10 + (*p_++ - '0');
    while (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E' || *p_ == '+' || *p_ == '-' ||
                         (*p_ >= '0' && *p_ <= '9'))) {
      integral = false;
      ++p_;
    }
    if (p_ == start) return false;
    *value = integral ? v : 0;
    return true;
  }

  __attribute__((always_inline)) bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // Skips one value. Scalars (most values) inline; containers through SkipNested.
  __attribute__((always_inline)) bool Skip(int depth) {
    Ws();
    if (p_ >= end_) return false;
    const char* begin = p_;
    bool ok;
    uint8_t kind;
    switch (*p_) {
      case '"': {
        std::string_view s;
        ok = String(&s);
        kind = Value::kString;
        break;
      }
      case 'n':
        ok = Literal("null");
        kind = Value::kNull;
        break;
      case 't':
        ok = Literal("true");
        kind = Value::kTrue;
        break;
      case 'f':
        ok = Literal("false");
        kind = Value::kFalse;
        break;
      case '{':
      case '[':
        return SkipNested(depth);
      default: {
        uint64_t v;
        ok = Number(&v);
        kind = Value::kNumber;
      }
    }
    if (ok) Rec(begin, kind, Value::kNone);
    return ok;
  }

  __attribute__((noinline)) bool SkipNested(int depth) {
    if (depth > kMaxDepth) return false;
    if (*p_ == '{') return Object([&](std::string_view) { return Skip(depth + 1); });
    return Array([&] { return Skip(depth + 1); });
  }

  bool NonEmptyString(bool* nonempty) {
    if (Peek('"')) {
      const char* begin = p_;
      std::string_view s;
      if (!String(&s)) return false;
      Rec(begin, Value::kString, Value::kText);
      *nonempty = *nonempty || !s.empty();
      return true;
    }
    return Skip(1);
  }

  bool Choices(ChunkInfo* info) {
    if (!Peek('[')) return Skip(1);
    return Array([&] {
      ++info->choices;
      choice_ = static_cast<uint8_t>(std::min<uint32_t>(info->choices - 1, 255));
      bool content = false;
      bool ok;
      if (Peek('{')) {
        ok = Object([&](std::string_view key) -> bool {
          if (Is(key, "text")) return NonEmptyString(&content);
          if (Is(key, "delta")) {
            if (!Peek('{')) return Skip(2);
            return Object([&](std::string_view k) -> bool {
              if (Is(k, "content") || Is(k, "reasoning_content")) return NonEmptyString(&content);
              return Skip(3);
            });
          }
          if (Is(key, "finish_reason")) {
            if (Peek('n')) {
              const char* begin = p_;
              if (!Literal("null")) return false;
              Rec(begin, Value::kNull, Value::kNone);
              return true;
            }
            info->finished = true;
            return Skip(2);
          }
          return Skip(2);
        });
      } else {
        ok = Skip(1);
      }
      if (content) ++info->content_deltas;
      return ok;
    });
  }

  bool Usage(ChunkInfo* info) {
    if (!Peek('{')) return Skip(1);
    bool has_completion = false;
    bool ok = Object([&](std::string_view key) -> bool {
      uint64_t v = 0;
      if (Is(key, "completion_tokens") && !Peek('n')) {
        if (!Peek('-') && (Peek('"') || Peek('{') || Peek('[') || Peek('t') || Peek('f'))) {
          has_completion = true;  // present but not a number: counts as 0, like the reference
          info->completion_tokens = 0;
          if (rec_ != nullptr) rec_->completion_writer = -1;
          return Skip(2);
        }
        const char* begin = p_;
        const int index = NextIndex();
        if (!Number(&v)) return false;
        Rec(begin, Value::kNumber, Value::kCompletion);
        if (rec_ != nullptr) rec_->completion_writer = index;
        info->completion_tokens = static_cast<uint32_t>(v);
        has_completion = true;
        return true;
      }
      if (Is(key, "prompt_tokens") && !Peek('n')) {
        if (Peek('"') || Peek('{') || Peek('[') || Peek('t') || Peek('f')) return Skip(2);
        const char* begin = p_;
        const int index = NextIndex();
        if (!Number(&v)) return false;
        Rec(begin, Value::kNumber, Value::kPrompt);
        if (rec_ != nullptr) rec_->prompt_writer = index;
        info->prompt_tokens = static_cast<uint32_t>(v);
        return true;
      }
      return Skip(2);
    });
    info->has_usage = info->has_usage || has_completion;
    return ok;
  }

  void SetMessage(ChunkInfo* info, std::string_view raw) {
    info->error_message.assign(raw.substr(0, kMaxErrorMessage));
  }

  bool ErrorValue(ChunkInfo* info) {
    if (Peek('"')) {
      std::string_view s;
      if (!String(&s)) return false;
      SetMessage(info, s);
      return true;
    }
    if (Peek('{')) {
      return Object([&](std::string_view key) -> bool {
        if (Is(key, "message") && Peek('"')) {
          std::string_view s;
          if (!String(&s)) return false;
          SetMessage(info, s);
          return true;
        }
        return Skip(2);
      });
    }
    return Skip(1);
  }

  const char* base_;
  const char* p_;
  const char* end_;
  Recording* rec_;
  uint8_t choice_ = 0;  // index of the choice being walked (for Value::choice)
};

bool IsDone(std::string_view data) {
  while (!data.empty() && (data.back() == ' ' || data.back() == '\t')) data.remove_suffix(1);
  while (!data.empty() && (data.front() == ' ' || data.front() == '\t')) data.remove_prefix(1);
  return data == "[DONE]";
}

}  // namespace

ChunkInfo ScanChunk(std::string_view data) {
  ChunkInfo info;
  if (IsDone(data)) {
    info.done = true;
    return info;
  }
  if (!Scanner(data).Chunk(&info)) {
    ChunkInfo bad;
    bad.malformed = true;
    return bad;
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// ChunkScanner: the template fast path in front of the walker.

namespace {
constexpr size_t kMaxTemplate = 16 * 1024;
constexpr uint32_t kMaxTemplateChoices = 64;  // content flags are one bit per choice
}  // namespace

ChunkInfo ChunkScanner::Scan(std::string_view data) {
  ChunkInfo info;
  if (usable_ && Match(data, &info)) {
    ++fast_;
    return info;
  }
  ++walked_;
  if (IsDone(data)) {
    info.done = true;
    return info;
  }
  scratch_.clear();
  Recording rec;
  rec.values = data.size() <= kMaxTemplate ? &scratch_ : nullptr;
  if (!Scanner(data, &rec).Chunk(&info)) {
    ChunkInfo bad;
    bad.malformed = true;
    return bad;
  }
  // Error chunks end the stream; they never become the template.
  if (rec.values != nullptr && !info.error && info.choices <= kMaxTemplateChoices) {
    Learn(data, info, rec.completion_writer, rec.prompt_writer);
  }
  return info;
}

bool ChunkScanner::Match(std::string_view data, ChunkInfo* out) const {
  const char* c = data.data();
  const char* const end = c + data.size();
  const char* const t = template_.data();
  size_t tpos = 0;
  uint64_t content = frozen_content_;
  uint32_t completion = base_.completion_tokens;
  uint32_t prompt = base_.prompt_tokens;
  for (const uint32_t index : thawed_) {
    const Value& v = values_[index];
    // The bytes up to this value are the template's (keys, punctuation, frozen values).
    const size_t len = v.begin - tpos;
    if (static_cast<size_t>(end - c) < len || std::memcmp(c, t + tpos, len) != 0) return false;
    c += len;
    tpos = v.end;
    if (v.kind == Value::kString) {
      if (c >= end || *c != '"') return false;
      const char* close = StringEnd(c + 1, end);
      if (close == nullptr) return false;
      if (v.role == Value::kText) {
        if (close > c + 1) content |= uint64_t{1} << v.choice;
      } else if (v.role == Value::kObject) {
        // {"object": "error", ...} is an error chunk: the walker's business.
        if (close - c - 1 == 5 && std::memcmp(c + 1, "error", 5) == 0) return false;
      }
      c = close + 1;
    } else {  // kNumber: only an unsigned integer without leading zeros is taken
      const char* start = c;
      uint64_t n = 0;
      while (c < end && *c >= '0' && *c <= '9') n = n * 10 + static_cast<uint64_t>(*c++ - '0');
      if (c == start || (*start == '0' && c - start > 1)) return false;
      if (static_cast<int>(index) == completion_writer_) {
        completion = static_cast<uint32_t>(n);
      } else if (static_cast<int>(index) == prompt_writer_) {
        prompt = static_cast<uint32_t>(n);
      }
    }
  }
  const size_t len = template_.size() - tpos;
  if (static_cast<size_t>(end - c) != len || std::memcmp(c, t + tpos, len) != 0) return false;
  *out = base_;
  out->content_deltas = static_cast<uint32_t>(__builtin_popcountll(content));
  out->completion_tokens = completion;
  out->prompt_tokens = prompt;
  return true;
}

void ChunkScanner::Learn(std::string_view data, const ChunkInfo& info, int completion_writer,
                         int prompt_writer) {
  // Same structure as the template (same values in kind and role, the same bytes between
  // them)? Then the values that differ join the thawed ones; otherwise start afresh.
  bool same = usable_ && scratch_.size() == values_.size();
  size_t tpos = 0, dpos = 0;
  for (size_t i = 0; same && i < values_.size(); ++i) {
    const Value& a = values_[i];
    const Value& b = scratch_[i];
    const size_t gap = a.begin - tpos;
    same = a.kind == b.kind && a.role == b.role && a.choice == b.choice &&
           b.begin - dpos == gap && std::memcmp(template_.data() + tpos, data.data() + dpos, gap) == 0;
    tpos = a.end;
    dpos = b.end;
  }
  same = same && template_.size() - tpos == data.size() - dpos &&
         std::memcmp(template_.data() + tpos, data.data() + dpos, data.size() - dpos) == 0;
  if (same) {
    for (size_t i = 0; i < values_.size(); ++i) {
      const Value& a = values_[i];
      Value& b = scratch_[i];
      b.thawed = a.thawed || a.end - a.begin != b.end - b.begin ||
                 std::memcmp(template_.data() + a.begin, data.data() + b.begin, a.end - a.begin) != 0;
    }
  }
  template_.assign(data);
  values_.swap(scratch_);
  base_ = info;
  thawed_.clear();
  frozen_content_ = 0;
  for (size_t i = 0; i < values_.size(); ++i) {
    const Value& v = values_[i];
    if (v.thawed) {
      thawed_.push_back(static_cast<uint32_t>(i));
    } else if (v.role == Value::kText && v.end - v.begin > 2) {
      frozen_content_ |= uint64_t{1} << v.choice;
    }
  }
  completion_writer_ = completion_writer >= 0 && values_[completion_writer].thawed ? completion_writer : -1;
  prompt_writer_ = prompt_writer >= 0 && values_[prompt_writer].thawed ? prompt_writer : -1;
  usable_ = true;
}

ChunkInfo ParseChunkJson(std::string_view data) {
  ChunkInfo info;
  if (IsDone(data)) {
    info.done = true;
    return info;
  }
  nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    info.malformed = true;
    return info;
  }
  auto raw_message = [](const nlohmann::json& s) {
    // The scanner keeps the escaped text; dump() re-escapes the same way for plain messages.
    std::string d = s.dump();
    return d.substr(1, d.size() - 2).substr(0, kMaxErrorMessage);
  };
  if (auto it = j.find("error"); it != j.end()) {
    info.error = true;
    if (it->is_string()) {
      info.error_message = raw_message(*it);
    } else if (it->is_object()) {
      if (auto m = it->find("message"); m != it->end() && m->is_string()) {
        info.error_message = raw_message(*m);
      }
    }
  }
  if (auto it = j.find("object"); it != j.end() && it->is_string() && *it == "error") {
    info.error = true;
    if (info.error_message.empty()) {
      if (auto m = j.find("message"); m != j.end() && m->is_string()) {
        info.error_message = raw_message(*m);
      }
    }
  }
  auto nonempty = [](const nlohmann::json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
  };
  if (auto it = j.find("choices"); it != j.end() && it->is_array()) {
    for (const auto& c : *it) {
      ++info.choices;
      if (!c.is_object()) continue;
      bool content = nonempty(c, "text");
      if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
        content = content || nonempty(*d, "content") || nonempty(*d, "reasoning_content");
      }
      if (content) ++info.content_deltas;
      if (auto f = c.find("finish_reason"); f != c.end() && !f->is_null()) info.finished = true;
    }
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    auto number = [](const nlohmann::json& v) -> uint32_t {
      return v.is_number_unsigned() ? static_cast<uint32_t>(v.get<uint64_t>()) : 0;
    };
    if (auto c = u->find("completion_tokens"); c != u->end() && !c->is_null()) {
      info.has_usage = true;
      info.completion_tokens = number(*c);
    }
    if (auto p = u->find("prompt_tokens"); p != u->end() && !p->is_null()) {
      info.prompt_tokens = number(*p);
    }
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// TokenCounter

uint32_t TokenCounter::OnChunk(const ChunkInfo& chunk) {
  finished_ = finished_ || chunk.finished;
  if (chunk.has_usage) {
    uint32_t tokens = 0;
    if (chunk.choices > 0 || usage_seen_) {
      tokens = chunk.completion_tokens > counted_ ? chunk.completion_tokens - counted_ : 0;
      counted_ += tokens;
    }
    usage_seen_ = true;
    usage_completion_ = chunk.completion_tokens;
    prompt_tokens_ = chunk.prompt_tokens;
    return tokens;
  }
  if (chunk.prompt_tokens) prompt_tokens_ = chunk.prompt_tokens;
  counted_ += chunk.content_deltas;
  return chunk.content_deltas;
}

}  // namespace mstperf::loadgen
