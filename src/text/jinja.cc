// Jinja2-subset interpreter for chat templates. See jinja.h for the supported language and
// docs/chat_templates.md for the details that matter when comparing with Python's Jinja2.
//
// Inside this file, parse and render errors travel as a private exception type (JinjaError) so
// that the recursive descent parser and the evaluator stay readable; Parse() and Render() catch
// it and return a Status, so no exception ever leaves this file.
#include "jinja.h"
#include "unicode.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>

namespace tracemark::jinja {

// ---------------------------------------------------------------------------------------------
// AST

enum class NodeKind : uint8_t {
  kBody, kText, kOutput, kIf, kFor, kSet, kSetAttr, kSetBlock, kMacro, kBreak, kContinue,
  kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kNot, kNeg, kPos,
  kBinary, kAnd, kOr, kCompare, kCond, kListLit, kDictLit,
};

struct Node {
  NodeKind kind = NodeKind::kBody;
  int line = 0;
  std::string name;                          // text, variable, attribute, filter, test, operator
  Value value;                               // kLiteral
  std::vector<std::unique_ptr<Node>> kids;   // children; nullptr marks an absent optional part
  std::vector<std::string> names;            // for-targets, keyword-argument names, compare ops
  bool flag = false;                         // kIf: has else; kFor: has else; kTest: negated
  std::unique_ptr<Node> extra;               // kFor: loop filter condition
};

namespace {

using NodePtr = std::unique_ptr<Node>;

struct JinjaError {
  StatusCode code;
  std::string message;
};

[[noreturn]] void Fail(int line, const std::string& msg) {
  throw JinjaError{StatusCode::kInvalidArgument, "chat template line " + std::to_string(line) + ": " + msg};
}
[[noreturn]] void Unsupported(int line, const std::string& what) {
  throw JinjaError{StatusCode::kUnimplemented,
                   "chat template line " + std::to_string(line) + ": " + what +
                       " is not supported by tracemark's template engine"};
}
[[noreturn]] void LimitHit(const std::string& msg) {
  throw JinjaError{StatusCode::kResourceExhausted, "chat template: " + msg};
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and Python string helpers

// Decodes the code point at s[i]; invalid bytes decode as themselves (one byte each).
char32_t DecodeAt(std::string_view s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 1;
  char32_t cp = c;
  if (c >= 0xC0 && c < 0xE0) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c < 0xF0) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c < 0xF8) { n = 4; cp = c & 0x07; }
  if (n > 1) {
    if (i + n > s.size()) { *len = 1; return c; }
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) { *len = 1; return c; }
      cp = (cp << 6) | (cc & 0x3F);
    }
  }
  *len = n;
  return cp;
}


// Python's str.isspace() (identical to the `\s` class of Python's re for str patterns).
bool IsPySpace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::pair<size_t, size_t>> CodePoints(std::string_view s) {  // (offset, length)
  std::vector<std::pair<size_t, size_t>> cps;
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    DecodeAt(s, i, &len);
    cps.emplace_back(i, len);
    i += len;
  }
  return cps;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    size_t len = 0;
    DecodeAt(s, i, &len);
    i += len;
  }
  return n;
}

// Python str.strip/lstrip/rstrip; `chars` null means whitespace.
std::string PyStrip(std::string_view s, bool left, bool right, const std::string* chars) {
  std::vector<char32_t> set;
  if (chars != nullptr) {
    for (size_t i = 0; i < chars->size();) {
      size_t len = 0;
      set.push_back(DecodeAt(*chars, i, &len));
      i += len;
    }
  }
  auto strip_it = [&](char32_t c) {
    return chars == nullptr ? IsPySpace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  const auto cps = CodePoints(s);
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e) {
      size_t len = 0;
      if (!strip_it(DecodeAt(s, cps[b].first, &len))) break;
      ++b;
    }
  }
  if (right) {
    while (e > b) {
      size_t len = 0;
      if (!strip_it(DecodeAt(s, cps[e - 1].first, &len))) break;
      --e;
    }
  }
  if (b == e) return "";
  const size_t from = cps[b].first;
  const size_t to = cps[e - 1].first + cps[e - 1].second;
  return std::string(s.substr(from, to - from));
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Python float repr: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
std::string PyFloatRepr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  const int exp = std::stoi(sci.substr(epos + 1));
  bool neg = false;
  if (!mant.empty() && mant[0] == '-') { neg = true; mant.erase(0, 1); }
  std::string digits;
  for (char c : mant) if (c != '.') digits.push_back(c);
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out = digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return neg ? "-" + out : out;
}

std::string PyStrRepr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    const char32_t c = DecodeAt(s, i, &len);
    char esc[16];
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<char32_t>(q)) { out += '\\'; out += q; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0xA0) || c == 0xAD) {
      std::snprintf(esc, sizeof(esc), "\\x%02x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  out += q;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof(esc), "\\u%04x", c);
          *out += esc;
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

// ---------------------------------------------------------------------------------------------
// Lexer

enum class Tok : uint8_t { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEnd };

struct Token {
  Tok type = Tok::kEnd;
  std::string text;
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
};

struct Segment {
  enum Kind : uint8_t { kText, kVar, kBlock, kComment } kind = kText;
  std::string_view body;
  int line = 1;
  bool strip_left = false, plus_left = false;    // "{%-" / "{%+"
  bool strip_right = false, plus_right = false;  // "-%}" / "+%}"
};

int LineAt(std::string_view src, size_t pos) {
  return 1 + static_cast<int>(std::count(src.begin(), src.begin() + static_cast<long>(pos), '\n'));
}

std::vector<Segment> SplitSegments(std::string_view src) {
  std::vector<Segment> segs;
  size_t pos = 0;
  while (pos < src.size()) {
    size_t start = pos;
    while (true) {
      start = src.find('{', start);
      if (start == std::string_view::npos || start + 1 >= src.size()) { start = std::string_view::npos; break; }
      const char n = src[start + 1];
      if (n == '{' || n == '%' || n == '#') break;
      ++start;
    }
    if (start == std::string_view::npos) {
      segs.push_back({Segment::kText, src.substr(pos), LineAt(src, pos)});
      break;
    }
    if (start > pos) segs.push_back({Segment::kText, src.substr(pos, start - pos), LineAt(src, pos)});
    Segment tag;
    tag.line = LineAt(src, start);
    const char opener = src[start + 1];
    tag.kind = opener == '{' ? Segment::kVar : opener == '%' ? Segment::kBlock : Segment::kComment;
    size_t p = start + 2;
    if (p < src.size() && src[p] == '-') { tag.strip_left = true; ++p; }
    else if (p < src.size() && src[p] == '+') { tag.plus_left = true; ++p; }
    const char closer = tag.kind == Segment::kVar ? '}' : tag.kind == Segment::kBlock ? '%' : '#';
    size_t end = std::string_view::npos;
    if (tag.kind == Segment::kComment) {
      end = src.find("#}", p);
    } else {
      int depth = 0;
      for (size_t q = p; q < src.size(); ++q) {
        const char c = src[q];
        if (c == '\'' || c == '"') {
          size_t r = q + 1;
          while (r < src.size() && src[r] != c) r += (src[r] == '\\') ? 2 : 1;
          if (r >= src.size()) break;
          q = r;
          continue;
        }
        if (depth == 0 && c == closer && q + 1 < src.size() && src[q + 1] == '}') { end = q; break; }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
      }
    }
    if (end == std::string_view::npos) {
      Fail(tag.line, std::string("unclosed '{") + opener + "'");
    }
    size_t body_end = end;
    if (body_end > p && src[body_end - 1] == '-') { tag.strip_right = true; --body_end; }
    else if (body_end > p && src[body_end - 1] == '+' && tag.kind != Segment::kVar) { tag.plus_right = true; --body_end; }
    tag.body = src.substr(p, body_end - p);
    segs.push_back(tag);
    pos = end + 2;
  }
  return segs;
}

// Applies -, +, trim_blocks and lstrip_blocks to the text segments (Jinja2's lexer rules).
void ApplyWhitespaceControl(std::vector<Segment>& segs, std::vector<std::string>& texts) {
  texts.assign(segs.size(), std::string());
  for (size_t k = 0; k < segs.size(); ++k) {
    if (segs[k].kind != Segment::kText) continue;
    std::string t(segs[k].body);
    const Segment* prev = k > 0 ? &segs[k - 1] : nullptr;
    const Segment* next = k + 1 < segs.size() ? &segs[k + 1] : nullptr;
    bool line_starting = prev == nullptr;
    if (prev != nullptr) {
      if (prev->strip_right) {
        t = PyStrip(t, true, false, nullptr);
      } else if (prev->kind != Segment::kVar && !prev->plus_right && !t.empty() && t[0] == '\n') {
        t.erase(0, 1);  // trim_blocks
        line_starting = true;
      }
    }
    if (next != nullptr) {
      if (next->strip_left) {
        t = PyStrip(t, false, true, nullptr);
      } else if (next->kind != Segment::kVar && !next->plus_left) {
        // lstrip_blocks: drop spaces between the start of the line and the tag.
        const size_t nl = t.rfind('\n');
        const size_t l = nl == std::string::npos ? 0 : nl + 1;
        if ((l > 0 || line_starting) && l < t.size()) {
          bool all_space = true;
          for (size_t i = l; i < t.size() && all_space;) {
            size_t len = 0;
            all_space = IsPySpace(DecodeAt(t, i, &len));
            i += len;
          }
          if (all_space) t.erase(l);
        }
      }
    }
    texts[k] = std::move(t);
  }
}

class Lexer {
 public:
  explicit Lexer(std::vector<Token>* out) : out_(out) {}

  void Tokenize(std::string_view body, int line) {
    size_t i = 0;
    while (i < body.size()) {
      const char c = body[i];
      if (c == '\n') { ++line; ++i; continue; }
      if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') { ++i; continue; }
      Token t;
      t.line = line;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < body.size() && (std::isalnum(static_cast<unsigned char>(body[j])) || body[j] == '_')) ++j;
        t.type = Tok::kName;
        t.text = std::string(body.substr(i, j - i));
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t j = i;
        bool is_float = false;
        while (j < body.size() && (std::isdigit(static_cast<unsigned char>(body[j])) || body[j] == '_')) ++j;
        if (j + 1 < body.size() && body[j] == '.' && std::isdigit(static_cast<unsigned char>(body[j + 1]))) {
          is_float = true;
          ++j;
          while (j < body.size() && (std::isdigit(static_cast<unsigned char>(body[j])) || body[j] == '_')) ++j;
        }
        if (j < body.size() && (body[j] == 'e' || body[j] == 'E')) {
          size_t k = j + 1;
          if (k < body.size() && (body[k] == '+' || body[k] == '-')) ++k;
          if (k < body.size() && std::isdigit(static_cast<unsigned char>(body[k]))) {
            is_float = true;
            j = k;
            while (j < body.size() && std::isdigit(static_cast<unsigned char>(body[j]))) ++j;
          }
        }
        std::string num;
        for (size_t k = i; k < j; ++k) if (body[k] != '_') num.push_back(body[k]);
        if (is_float) {
          t.type = Tok::kFloat;
          t.fval = std::strtod(num.c_str(), nullptr);
        } else {
          t.type = Tok::kInt;
          auto r = std::from_chars(num.data(), num.data() + num.size(), t.ival);
          if (r.ec != std::errc()) Fail(line, "integer literal out of range: " + num);
        }
        i = j;
      } else if (c == '\'' || c == '"') {
        t.type = Tok::kString;
        size_t j = i + 1;
        while (true) {
          if (j >= body.size()) Fail(line, "unterminated string literal");
          const char d = body[j];
          if (d == c) break;
          if (d == '\n') ++line;
          if (d != '\\') { t.text.push_back(d); ++j; continue; }
          if (j + 1 >= body.size()) Fail(line, "unterminated string literal");
          const char e = body[j + 1];
          j += 2;
          switch (e) {
            case 'n': t.text.push_back('\n'); break;
            case 't': t.text.push_back('\t'); break;
            case 'r': t.text.push_back('\r'); break;
            case '\\': t.text.push_back('\\'); break;
            case '\'': t.text.push_back('\''); break;
            case '"': t.text.push_back('"'); break;
            case 'a': t.text.push_back('\a'); break;
            case 'b': t.text.push_back('\b'); break;
            case 'f': t.text.push_back('\f'); break;
            case 'v': t.text.push_back('\v'); break;
            case '0': t.text.push_back('\0'); break;
            case '\n': ++line; break;  // line continuation
            case 'x': case 'u': case 'U': {
              const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
              if (j + digits > body.size()) Fail(line, "truncated \\" + std::string(1, e) + " escape");
              uint32_t cp = 0;
              auto r = std::from_chars(body.data() + j, body.data() + j + digits, cp, 16);
              if (r.ptr != body.data() + j + digits || cp > 0x10FFFF) Fail(line, "bad escape in string literal");
              text::AppendUtf8(static_cast<uint32_t>(cp), &t.text);
              j += digits;
              break;
            }
            default:  // Python keeps unknown escapes as written
              t.text.push_back('\\');
              t.text.push_back(e);
          }
        }
        i = j + 1;
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                           "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        bool found = false;
        for (const char* op : kOps) {
          const size_t n = std::strlen(op);
          if (body.substr(i, n) == op) {
            t.type = Tok::kOp;
            t.text = op;
            i += n;
            found = true;
            break;
          }
        }
        if (!found) Fail(line, std::string("unexpected character '") + c + "'");
      }
      out_->push_back(std::move(t));
    }
  }

 private:
  std::vector<Token>* out_;
};

std::vector<Token> Lex(std::string_view src) {
  std::vector<Segment> segs = SplitSegments(src);
  std::vector<std::string> texts;
  ApplyWhitespaceControl(segs, texts);
  std::vector<Token> toks;
  Lexer lexer(&toks);
  for (size_t k = 0; k < segs.size(); ++k) {
    const Segment& s = segs[k];
    switch (s.kind) {
      case Segment::kText:
        if (!texts[k].empty()) {
          Token t;
          t.type = Tok::kText;
          t.text = std::move(texts[k]);
          t.line = s.line;
          toks.push_back(std::move(t));
        }
        break;
      case Segment::kComment:
        break;
      case Segment::kVar:
      case Segment::kBlock: {
        Token b;
        b.type = s.kind == Segment::kVar ? Tok::kVarBegin : Tok::kBlockBegin;
        b.line = s.line;
        toks.push_back(b);
        lexer.Tokenize(s.body, s.line);
        Token e;
        e.type = s.kind == Segment::kVar ? Tok::kVarEnd : Tok::kBlockEnd;
        e.line = toks.back().line;
        toks.push_back(e);
        break;
      }
    }
  }
  Token end;
  end.type = Tok::kEnd;
  end.line = toks.empty() ? 1 : toks.back().line;
  toks.push_back(end);
  return toks;
}

// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
 public:
  Parser(std::vector<Token> toks, int max_depth) : toks_(std::move(toks)), max_depth_(max_depth) {}

  NodePtr ParseTemplate() {
    std::string end_tag;
    NodePtr body = ParseBody({}, &end_tag);
    if (Cur().type != Tok::kEnd) Fail(Cur().line, "unexpected '{% " + end_tag + " %}'");
    return body;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > p_->max_depth_) {
        LimitHit("nesting deeper than " + std::to_string(p_->max_depth_) + " levels");
      }
    }
    ~DepthGuard() { --p_->depth_; }
    Parser* p_;
  };
  // Left-associative chains (a + b + c, x.a.b.c, x | f | g) are built in loops but nest in the
  // AST, which evaluation and destruction walk recursively: each link counts as one level.
  struct ChainGuard {
    explicit ChainGuard(Parser* p) : p_(p) {}
    void Link() {
      ++n_;
      if (++p_->depth_ > p_->max_depth_) {
        LimitHit("expression chain or nesting deeper than " + std::to_string(p_->max_depth_) + " levels");
      }
    }
    ~ChainGuard() { p_->depth_ -= n_; }
    Parser* p_;
    int n_ = 0;
  };

  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t ahead = 1) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
  bool IsOp(const char* op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(const char* n) const { return Cur().type == Tok::kName && Cur().text == n; }
  void Advance() { if (pos_ + 1 < toks_.size()) ++pos_; }
  void ExpectOp(const char* op) {
    if (!IsOp(op)) Fail(Cur().line, std::string("expected '") + op + "'" + Found());
    Advance();
  }
  std::string ExpectName() {
    if (Cur().type != Tok::kName) Fail(Cur().line, "expected a name" + Found());
    std::string n = Cur().text;
    Advance();
    return n;
  }
  void ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) Fail(Cur().line, "expected '%}'" + Found());
    Advance();
  }
  std::string Found() const {
    switch (Cur().type) {
      case Tok::kEnd: return ", found the end of the template";
      case Tok::kBlockEnd: return ", found '%}'";
      case Tok::kVarEnd: return ", found '}}'";
      default: return ", found '" + Cur().text + "'";
    }
  }

  static NodePtr Make(NodeKind k, int line) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = line;
    return n;
  }

  // Parses statements until a block tag whose keyword is in `ends` (left unconsumed after the
  // keyword: Cur() is the token after it) or the end of the template.
  NodePtr ParseBody(std::initializer_list<const char*> ends, std::string* end_tag) {
    DepthGuard guard(this);
    NodePtr body = Make(NodeKind::kBody, Cur().line);
    while (true) {
      const Token& t = Cur();
      if (t.type == Tok::kEnd) {
        if (ends.size() != 0) {
          std::string want;
          for (const char* e : ends) want += (want.empty() ? "" : " or ") + std::string("'{% ") + e + " %}'";
          Fail(t.line, "missing " + want);
        }
        return body;
      }
      if (t.type == Tok::kText) {
        NodePtr n = Make(NodeKind::kText, t.line);
        n->name = t.text;
        body->kids.push_back(std::move(n));
        Advance();
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        Advance();
        NodePtr n = Make(NodeKind::kOutput, t.line);
        n->kids.push_back(ParseExpr());
        if (Cur().type != Tok::kVarEnd) Fail(Cur().line, "expected '}}'" + Found());
        Advance();
        body->kids.push_back(std::move(n));
        continue;
      }
      if (t.type != Tok::kBlockBegin) Fail(t.line, "unexpected token" + Found());
      const Token& kw = Peek();
      if (kw.type != Tok::kName) Fail(kw.line, "expected a statement keyword");
      for (const char* e : ends) {
        if (kw.text == e) {
          *end_tag = kw.text;
          Advance();
          Advance();
          return body;
        }
      }
      Advance();
      Advance();
      const std::string& k = kw.text;
      if (k == "if") body->kids.push_back(ParseIf(kw.line));
      else if (k == "for") body->kids.push_back(ParseFor(kw.line));
      else if (k == "set") body->kids.push_back(ParseSet(kw.line));
      else if (k == "macro") body->kids.push_back(ParseMacro(kw.line));
      else if (k == "generation") {
        // transformers' assistant-mask tag: renders its body unchanged.
        ExpectBlockEnd();
        std::string end;
        body->kids.push_back(ParseBody({"endgeneration"}, &end));
        ExpectBlockEnd();
      } else if (k == "break" || k == "continue") {
        if (loop_depth_ == 0) Fail(kw.line, "'{% " + k + " %}' outside a loop");
        body->kids.push_back(Make(k == "break" ? NodeKind::kBreak : NodeKind::kContinue, kw.line));
        ExpectBlockEnd();
      } else if (k == "endif" || k == "endfor" || k == "elif" || k == "else" || k == "endset" ||
                 k == "endmacro" || k == "endgeneration")
        Fail(kw.line, "unexpected '{% " + k + " %}'");
      else Unsupported(kw.line, "'{% " + k + " %}'");
    }
  }

  NodePtr ParseIf(int line) {
    NodePtr n = Make(NodeKind::kIf, line);
    while (true) {
      n->kids.push_back(ParseExpr());
      ExpectBlockEnd();
      std::string end;
      n->kids.push_back(ParseBody({"elif", "else", "endif"}, &end));
      if (end == "elif") continue;
      if (end == "else") {
        ExpectBlockEnd();
        n->kids.push_back(ParseBody({"endif"}, &end));
        n->flag = true;
      }
      ExpectBlockEnd();
      return n;
    }
  }

  NodePtr ParseFor(int line) {
    NodePtr n = Make(NodeKind::kFor, line);
    n->names.push_back(ExpectName());
    while (IsOp(",")) {
      Advance();
      n->names.push_back(ExpectName());
    }
    if (!IsName("in")) Fail(Cur().line, "expected 'in'" + Found());
    Advance();
    n->kids.push_back(ParseOr());  // no conditional expression: `if` starts the loop filter
    if (IsName("if")) {
      Advance();
      n->extra = ParseOr();
    }
    if (IsName("recursive")) Unsupported(Cur().line, "recursive loops");
    ExpectBlockEnd();
    std::string end;
    ++loop_depth_;
    n->kids.push_back(ParseBody({"else", "endfor"}, &end));
    --loop_depth_;
    if (end == "else") {
      ExpectBlockEnd();
      n->kids.push_back(ParseBody({"endfor"}, &end));
      n->flag = true;
    }
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseSet(int line) {
    std::string target = ExpectName();
    NodePtr n;
    if (IsOp(".")) {
      Advance();
      n = Make(NodeKind::kSetAttr, line);
      n->names.push_back(ExpectName());
    } else {
      n = Make(NodeKind::kSet, line);
    }
    n->name = target;
    if (Cur().type == Tok::kBlockEnd && n->kind == NodeKind::kSet) {
      // {% set x %}...{% endset %}: x is the rendered body.
      n->kind = NodeKind::kSetBlock;
      Advance();
      std::string end;
      n->kids.push_back(ParseBody({"endset"}, &end));
      ExpectBlockEnd();
      return n;
    }
    if (IsOp("|")) Unsupported(line, "filtered block assignment");
    if (IsOp(",")) Unsupported(line, "tuple assignment in '{% set %}'");
    ExpectOp("=");
    n->kids.push_back(ParseExpr());
    ExpectBlockEnd();
    return n;
  }

  // {% macro name(a, b=default) %}body{% endmacro %}: kids[0] is the body, kids[1 + i] the
  // default of parameter i (or null).
  NodePtr ParseMacro(int line) {
    NodePtr n = Make(NodeKind::kMacro, line);
    n->name = ExpectName();
    n->kids.push_back(nullptr);
    ExpectOp("(");
    while (!IsOp(")")) {
      n->names.push_back(ExpectName());
      if (IsOp("=")) {
        Advance();
        n->kids.push_back(ParseExpr());
      } else {
        n->kids.push_back(nullptr);
      }
      if (!IsOp(",")) break;
      Advance();
    }
    ExpectOp(")");
    ExpectBlockEnd();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro
    std::string end;
    n->kids[0] = ParseBody({"endmacro"}, &end);
    loop_depth_ = saved_loops;
    ExpectBlockEnd();
    if (UsesName(*n->kids[0], {"varargs", "kwargs", "caller"})) {
      Unsupported(line, "a macro using varargs, kwargs or caller");
    }
    return n;
  }

  static bool UsesName(const Node& n, std::initializer_list<const char*> names) {
    if (n.kind == NodeKind::kName) {
      for (const char* x : names) {
        if (n.name == x) return true;
      }
    }
    for (const auto& k : n.kids) {
      if (k && UsesName(*k, names)) return true;
    }
    return n.extra && UsesName(*n.extra, names);
  }

  // ---- expressions, lowest precedence first (Jinja2's parser order) ----
  NodePtr ParseExpr() {
    DepthGuard guard(this);
    NodePtr e = ParseOr();
    ChainGuard chain(this);
    while (IsName("if")) {
      chain.Link();
      const int line = Cur().line;
      Advance();
      NodePtr cond = ParseOr();
      NodePtr otherwise;
      if (IsName("else")) {
        Advance();
        otherwise = ParseExpr();
      }
      NodePtr n = Make(NodeKind::kCond, line);
      n->kids.push_back(std::move(e));
      n->kids.push_back(std::move(cond));
      n->kids.push_back(std::move(otherwise));
      e = std::move(n);
    }
    return e;
  }

  NodePtr ParseOr() {
    NodePtr l = ParseAnd();
    ChainGuard chain(this);
    while (IsName("or")) {
      chain.Link();
      const int line = Cur().line;
      Advance();
      NodePtr n = Make(NodeKind::kOr, line);
      n->kids.push_back(std::move(l));
      n->kids.push_back(ParseAnd());
      l = std::move(n);
    }
    return l;
  }

  NodePtr ParseAnd() {
    NodePtr l = ParseNot();
    ChainGuard chain(this);
    while (IsName("and")) {
      chain.Link();
      const int line = Cur().line;
      Advance();
      NodePtr n = Make(NodeKind::kAnd, line);
      n->kids.push_back(std::move(l));
      n->kids.push_back(ParseNot());
      l = std::move(n);
    }
    return l;
  }

  NodePtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      NodePtr n = Make(NodeKind::kNot, Cur().line);
      Advance();
      n->kids.push_back(ParseNot());
      return n;
    }
    return ParseCompare();
  }

  NodePtr ParseCompare() {
    NodePtr first = ParseMath1();
    NodePtr n;
    ChainGuard chain(this);
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
                                     Cur().text == "<=" || Cur().text == ">" || Cur().text == ">=")) {
        op = Cur().text;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().type == Tok::kName && Peek().text == "in") {
        op = "notin";
        Advance();
        Advance();
      } else {
        break;
      }
      chain.Link();
      if (!n) {
        n = Make(NodeKind::kCompare, first->line);
        n->kids.push_back(std::move(first));
      }
      n->names.push_back(op);
      n->kids.push_back(ParseMath1());
    }
    return n ? std::move(n) : std::move(first);
  }

  NodePtr Binary(const std::string& op, NodePtr l, NodePtr r, int line) {
    NodePtr n = Make(NodeKind::kBinary, line);
    n->name = op;
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return n;
  }

  NodePtr ParseMath1() {
    NodePtr l = ParseConcat();
    ChainGuard chain(this);
    while (IsOp("+") || IsOp("-")) {
      chain.Link();
      const std::string op = Cur().text;
      const int line = Cur().line;
      Advance();
      l = Binary(op, std::move(l), ParseConcat(), line);
    }
    return l;
  }

  NodePtr ParseConcat() {
    NodePtr l = ParseMath2();
    ChainGuard chain(this);
    while (IsOp("~")) {
      chain.Link();
      const int line = Cur().line;
      Advance();
      l = Binary("~", std::move(l), ParseMath2(), line);
    }
    return l;
  }

  NodePtr ParseMath2() {
    NodePtr l = ParsePow();
    ChainGuard chain(this);
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      chain.Link();
      const std::string op = Cur().text;
      const int line = Cur().line;
      Advance();
      l = Binary(op, std::move(l), ParsePow(), line);
    }
    return l;
  }

  NodePtr ParsePow() {
    NodePtr l = ParseUnary(true);
    ChainGuard chain(this);
    while (IsOp("**")) {
      chain.Link();
      const int line = Cur().line;
      Advance();
      l = Binary("**", std::move(l), ParseUnary(true), line);
    }
    return l;
  }

  NodePtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    NodePtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Make(IsOp("-") ? NodeKind::kNeg : NodeKind::kPos, Cur().line);
      Advance();
      node->kids.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  NodePtr ParsePrimary() {
    const Token& t = Cur();
    NodePtr n;
    switch (t.type) {
      case Tok::kName: {
        n = Make(NodeKind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True") n->value = Value::Bool(true);
        else if (t.text == "false" || t.text == "False") n->value = Value::Bool(false);
        else if (t.text == "none" || t.text == "None") n->value = Value::None();
        else {
          n->kind = NodeKind::kName;
          n->name = t.text;
        }
        Advance();
        return n;
      }
      case Tok::kString: {
        std::string s = t.text;
        n = Make(NodeKind::kLiteral, t.line);
        Advance();
        while (Cur().type == Tok::kString) {  // adjacent literals concatenate
          s += Cur().text;
          Advance();
        }
        n->value = Value::Str(std::move(s));
        return n;
      }
      case Tok::kInt:
        n = Make(NodeKind::kLiteral, t.line);
        n->value = Value::Int(t.ival);
        Advance();
        return n;
      case Tok::kFloat:
        n = Make(NodeKind::kLiteral, t.line);
        n->value = Value::Float(t.fval);
        Advance();
        return n;
      case Tok::kOp:
        if (t.text == "(") {
          Advance();
          if (IsOp(")")) {
            Advance();
            n = Make(NodeKind::kListLit, t.line);  // empty tuple
            n->flag = true;
            return n;
          }
          NodePtr e = ParseExpr();
          if (IsOp(",")) {  // a tuple
            n = Make(NodeKind::kListLit, t.line);
            n->flag = true;
            n->kids.push_back(std::move(e));
            while (IsOp(",")) {
              Advance();
              if (IsOp(")")) break;
              n->kids.push_back(ParseExpr());
            }
            e = std::move(n);
          }
          ExpectOp(")");
          return e;
        }
        if (t.text == "[") {
          Advance();
          n = Make(NodeKind::kListLit, t.line);
          while (!IsOp("]")) {
            n->kids.push_back(ParseExpr());
            if (!IsOp(",")) break;
            Advance();
          }
          ExpectOp("]");
          return n;
        }
        if (t.text == "{") {
          Advance();
          n = Make(NodeKind::kDictLit, t.line);
          while (!IsOp("}")) {
            n->kids.push_back(ParseExpr());
            ExpectOp(":");
            n->kids.push_back(ParseExpr());
            if (!IsOp(",")) break;
            Advance();
          }
          ExpectOp("}");
          return n;
        }
        break;
      default:
        break;
    }
    Fail(t.line, "expected an expression" + Found());
  }

  // Arguments of a call, filter or test: positional then keyword (name=value).
  void ParseArgs(Node* n) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == "=") {
        n->names.push_back(Cur().text);
        Advance();
        Advance();
        n->kids.push_back(ParseExpr());
      } else {
        if (!n->names.empty()) Fail(Cur().line, "positional argument after keyword argument");
        n->kids.push_back(ParseExpr());
      }
      if (!IsOp(",")) break;
      Advance();
    }
    ExpectOp(")");
  }

  NodePtr ParsePostfix(NodePtr node) {
    ChainGuard chain(this);
    while (true) {
      if (IsOp(".")) {
        const int line = Cur().line;
        Advance();
        if (Cur().type == Tok::kInt) {  // x.0 is x[0]
          NodePtr n = Make(NodeKind::kItem, line);
          NodePtr key = Make(NodeKind::kLiteral, line);
          key->value = Value::Int(Cur().ival);
          Advance();
          n->kids.push_back(std::move(node));
          n->kids.push_back(std::move(key));
          chain.Link();
          chain.Link();
        node = std::move(n);
          continue;
        }
        NodePtr n = Make(NodeKind::kAttr, line);
        n->name = ExpectName();
        n->kids.push_back(std::move(node));
        chain.Link();
        node = std::move(n);
      } else if (IsOp("[")) {
        const int line = Cur().line;
        Advance();
        NodePtr parts[3];
        bool is_slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!IsOp(":") && !IsOp("]")) parts[k] = ParseExpr();
          if (k < 2 && IsOp(":")) {
            is_slice = true;
            Advance();
          } else {
            break;
          }
        }
        ExpectOp("]");
        NodePtr n = Make(is_slice ? NodeKind::kSlice : NodeKind::kItem, line);
        n->kids.push_back(std::move(node));
        if (!is_slice && !parts[0]) Fail(line, "empty subscript");
        n->kids.push_back(std::move(parts[0]));
        if (is_slice) {
          n->kids.push_back(std::move(parts[1]));
          n->kids.push_back(std::move(parts[2]));
        }
        chain.Link();
        node = std::move(n);
      } else if (IsOp("(")) {
        NodePtr n = Make(NodeKind::kCall, Cur().line);
        n->kids.push_back(std::move(node));
        ParseArgs(n.get());
        chain.Link();
        node = std::move(n);
      } else {
        return node;
      }
    }
  }

  NodePtr ParseFilterExpr(NodePtr node) {
    ChainGuard chain(this);
    while (true) {
      if (IsOp("|")) {
        const int line = Cur().line;
        Advance();
        NodePtr n = Make(NodeKind::kFilter, line);
        n->name = ExpectName();
        n->kids.push_back(std::move(node));
        if (IsOp("(")) ParseArgs(n.get());
        chain.Link();
        node = std::move(n);
      } else if (IsName("is")) {
        const int line = Cur().line;
        Advance();
        NodePtr n = Make(NodeKind::kTest, line);
        if (IsName("not")) {
          n->flag = true;
          Advance();
        }
        n->name = ExpectName();
        n->kids.push_back(std::move(node));
        if (IsOp("(")) {
          ParseArgs(n.get());
        } else if (Cur().type == Tok::kString || Cur().type == Tok::kInt || Cur().type == Tok::kFloat ||
                   (Cur().type == Tok::kName && Cur().text != "else" && Cur().text != "or" &&
                    Cur().text != "and" && Cur().text != "if" && Cur().text != "is" && Cur().text != "in" &&
                    Cur().text != "not")) {
          n->kids.push_back(ParsePostfix(ParsePrimary()));  // `x is divisibleby 3`
        }
        chain.Link();
        node = std::move(n);
      } else if (IsOp("(")) {
        NodePtr n = Make(NodeKind::kCall, Cur().line);
        n->kids.push_back(std::move(node));
        ParseArgs(n.get());
        chain.Link();
        node = std::move(n);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int max_depth_;
  int loop_depth_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Evaluation

const char* KindName(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "none";
    case Kind::kBool: return "boolean";
    case Kind::kInt: return "integer";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "namespace";
    case Kind::kFunction: return "function";
  }
  return "value";
}

bool IsNumber(const Value& v) { return v.kind == Kind::kBool || v.kind == Kind::kInt || v.kind == Kind::kFloat; }
double AsDouble(const Value& v) {
  return v.kind == Kind::kFloat ? v.f : v.kind == Kind::kInt ? static_cast<double>(v.i) : (v.b ? 1.0 : 0.0);
}
int64_t AsInt(const Value& v) { return v.kind == Kind::kInt ? v.i : (v.b ? 1 : 0); }

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return v.b;
    case Kind::kInt: return v.i != 0;
    case Kind::kFloat: return v.f != 0.0;
    case Kind::kString: return !v.s.empty();
    case Kind::kList: return v.i == kIterator || !v.list->empty();  // iterators are always true
    case Kind::kDict: return !v.dict->empty();
    case Kind::kNamespace:
    case Kind::kFunction: return true;
  }
  return false;
}

const Value* DictFind(const Dict& d, std::string_view key) {
  for (const auto& [k, v] : d) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool Equal(const Value& a, const Value& b) {
  if (IsNumber(a) && IsNumber(b)) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return AsDouble(a) == AsDouble(b);
    return AsInt(a) == AsInt(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return a.s == b.s;
    case Kind::kList:
      // A tuple, list, range or view never equals one of another kind.
      if (a.b != b.b || a.i != b.i || a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i) {
        if (!Equal((*a.list)[i], (*b.list)[i])) return false;
      }
      return true;
    case Kind::kDict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* o = DictFind(*b.dict, k);
        if (o == nullptr || !Equal(v, *o)) return false;
      }
      return true;
    case Kind::kNamespace: return a.dict == b.dict;
    case Kind::kFunction: return a.s == b.s && a.list == b.list;
    default: return false;
  }
}

class Renderer {
 public:
  Renderer(const Limits& limits, int64_t unix_time) : limits_(limits), unix_time_(unix_time) {}
  // Namespaces can hold themselves (`set ns.x = [ns]`); emptying every one breaks such cycles
  // so nothing leaks, and keeps destruction shallow.
  ~Renderer() {
    for (const auto& ns : namespaces_) ns->clear();
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  std::string Run(const Node& root, const Dict& vars) {
    scopes_.emplace_back();
    for (const char* fn : {"raise_exception", "strftime_now", "namespace", "range", "dict"}) {
      Value f;
      f.kind = Kind::kFunction;
      f.s = fn;
      scopes_.back().emplace_back(fn, f);
    }
    scopes_.emplace_back(vars);
    Exec(root);
    return std::move(out_);
  }

 private:
  using Scope = std::vector<std::pair<std::string, Value>>;

  struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* Kw(const char* name) const {
      for (const auto& [k, v] : kw) {
        if (k == name) return &v;
      }
      return nullptr;
    }
    // Positional i, else keyword `name`, else null.
    const Value* Get(size_t i, const char* name) const {
      if (i < pos.size()) return &pos[i];
      return Kw(name);
    }
  };

  void CheckSize(size_t n, int line) const {
    if (n > limits_.max_output_bytes) {
      LimitHit("line " + std::to_string(line) + ": output or string larger than " +
               std::to_string(limits_.max_output_bytes) + " bytes");
    }
  }
  void Emit(const std::string& s, int line) {
    CheckSize(out_.size() + s.size(), line);
    out_ += s;
  }
  void CountIteration(int line) {
    if (++iterations_ > limits_.max_loop_iterations) {
      LimitHit("line " + std::to_string(line) + ": more than " + std::to_string(limits_.max_loop_iterations) +
               " loop iterations");
    }
  }

  const Value* Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      for (auto jt = it->rbegin(); jt != it->rend(); ++jt) {
        if (jt->first == name) return &jt->second;
      }
    }
    return nullptr;
  }
  void Assign(const std::string& name, Value v) {
    for (auto& [k, old] : scopes_.back()) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    scopes_.back().emplace_back(name, std::move(v));
  }

  // Python str() of a value, as {{ }} and ~ print it.
  std::string ToStr(const Value& v, int line) {
    switch (v.kind) {
      case Kind::kUndefined: return "";
      case Kind::kNone: return "None";
      case Kind::kBool: return v.b ? "True" : "False";
      case Kind::kInt: return std::to_string(v.i);
      case Kind::kFloat: return PyFloatRepr(v.f);
      case Kind::kString: return v.s;
      case Kind::kList:
      case Kind::kDict: {
        std::string s = Repr(v, line);
        CheckSize(s.size(), line);
        return s;
      }
      case Kind::kNamespace:
      case Kind::kFunction:
        Unsupported(line, std::string("printing a ") + KindName(v));
    }
    return "";
  }
  std::string Repr(const Value& v, int line) {
    if (v.kind == Kind::kString) return PyStrRepr(v.s);
    if (v.kind == Kind::kList) {
      if (v.i != kPlainList) Unsupported(line, "printing a dict view, range or iterator (convert it with '| list')");
      std::string s = v.b ? "(" : "[";
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) s += ", ";
        s += Repr((*v.list)[i], line);
        CheckSize(s.size(), line);
      }
      if (v.b && v.list->size() == 1) s += ",";
      return s + (v.b ? ")" : "]");
    }
    if (v.kind == Kind::kDict) {
      std::string s = "{";
      bool first = true;
      for (const auto& [k, x] : *v.dict) {
        if (!first) s += ", ";
        first = false;
        s += PyStrRepr(k) + ": " + Repr(x, line);
        CheckSize(s.size(), line);
      }
      return s + "}";
    }
    if (v.kind == Kind::kUndefined) Unsupported(line, "printing an undefined value inside a list");
    return ToStr(v, line);
  }

  void Json(const Value& v, int indent, bool sort_keys, int level, std::string* out, int line) {
    CheckSize(out->size(), line);
    auto newline = [&](int lvl) {
      out->push_back('\n');
      out->append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
    };
    switch (v.kind) {
      case Kind::kNone: *out += "null"; return;
      case Kind::kBool: *out += v.b ? "true" : "false"; return;
      case Kind::kInt: *out += std::to_string(v.i); return;
      case Kind::kFloat:
        *out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : PyFloatRepr(v.f);
        return;
      case Kind::kString: JsonString(v.s, out); return;
      case Kind::kList: {
        if (v.list->empty()) { *out += "[]"; return; }
        out->push_back('[');
        for (size_t i = 0; i < v.list->size(); ++i) {
          if (i) *out += indent >= 0 ? "," : ", ";
          if (indent >= 0) newline(level + 1);
          Json((*v.list)[i], indent, sort_keys, level + 1, out, line);
        }
        if (indent >= 0) newline(level);
        out->push_back(']');
        return;
      }
      case Kind::kDict: {
        if (v.dict->empty()) { *out += "{}"; return; }
        std::vector<const std::pair<std::string, Value>*> items;
        for (const auto& kv : *v.dict) items.push_back(&kv);
        if (sort_keys) {
          std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        }
        out->push_back('{');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) *out += indent >= 0 ? "," : ", ";
          if (indent >= 0) newline(level + 1);
          JsonString(items[i]->first, out);
          *out += ": ";
          Json(items[i]->second, indent, sort_keys, level + 1, out, line);
        }
        if (indent >= 0) newline(level);
        out->push_back('}');
        return;
      }
      default:
        Fail(line, std::string("tojson: a ") + KindName(v) + " value is not JSON serializable");
    }
  }

  // ---- statements ----
  void Exec(const Node& n) {
    switch (n.kind) {
      case NodeKind::kBody:
        for (const auto& k : n.kids) Exec(*k);
        return;
      case NodeKind::kText:
        Emit(n.name, n.line);
        return;
      case NodeKind::kOutput:
        Emit(ToStr(Eval(*n.kids[0]), n.line), n.line);
        return;
      case NodeKind::kIf: {
        const size_t pairs = (n.kids.size() - (n.flag ? 1 : 0)) / 2;
        for (size_t i = 0; i < pairs; ++i) {
          if (Truthy(Eval(*n.kids[2 * i]))) {
            Exec(*n.kids[2 * i + 1]);
            return;
          }
        }
        if (n.flag) Exec(*n.kids.back());
        return;
      }
      case NodeKind::kFor:
        ExecFor(n);
        return;
      case NodeKind::kSet:
        Assign(n.name, Eval(*n.kids[0]));
        return;
      case NodeKind::kSetBlock:
        Assign(n.name, Value::Str(Capture(*n.kids[0])));
        return;
      case NodeKind::kMacro: {
        Value f;
        f.kind = Kind::kFunction;
        f.s = n.name;
        f.macro = &n;
        Assign(n.name, std::move(f));
        return;
      }
      case NodeKind::kBreak:
        throw LoopControl{true};
      case NodeKind::kContinue:
        throw LoopControl{false};
      case NodeKind::kSetAttr: {
        const Value* ns = Lookup(n.name);
        if (ns == nullptr || ns->kind != Kind::kNamespace) {
          Fail(n.line, "cannot set attribute '" + n.names[0] + "' on '" + n.name + "', which is not a namespace()");
        }
        Value v = Eval(*n.kids[0]);
        for (auto& [k, old] : *ns->dict) {
          if (k == n.names[0]) {
            old = std::move(v);
            return;
          }
        }
        ns->dict->emplace_back(n.names[0], std::move(v));
        return;
      }
      default:
        Fail(n.line, "internal: expression in statement position");
    }
  }

  struct LoopControl {
    bool is_break;
  };

  // Renders `body` into a string of its own (block set, macro call).
  std::string Capture(const Node& body) {
    struct Swap {
      Swap(std::string* a, std::string* b) : a_(a), b_(b) { a_->swap(*b_); }
      ~Swap() { a_->swap(*b_); }
      std::string* a_;
      std::string* b_;
    };
    std::string buffer;
    {
      Swap swap(&out_, &buffer);
      Exec(body);
    }
    return buffer;
  }

  Value CallMacro(const Node& m, Args& a, int line) {
    if (++macro_depth_ > limits_.max_macro_depth) {
      LimitHit("line " + std::to_string(line) + ": macro calls nested deeper than " +
               std::to_string(limits_.max_macro_depth));
    }
    if (a.pos.size() > m.names.size()) {
      Fail(line, "macro '" + m.name + "' takes " + std::to_string(m.names.size()) + " arguments, got " +
                     std::to_string(a.pos.size()));
    }
    for (const auto& [k, v] : a.kw) {
      if (std::find(m.names.begin(), m.names.end(), k) == m.names.end()) {
        Fail(line, "macro '" + m.name + "' has no parameter '" + k + "'");
      }
    }
    // A macro sees the globals and template-level variables, not the caller's locals.
    std::vector<Scope> saved;
    saved.swap(scopes_);
    scopes_.push_back(saved[0]);
    scopes_.push_back(saved[1]);
    scopes_.emplace_back();
    struct Restore {
      ~Restore() {
        r->scopes_.swap(*saved);
        --r->macro_depth_;
      }
      Renderer* r;
      std::vector<Scope>* saved;
    } restore{this, &saved};
    for (size_t i = 0; i < m.names.size(); ++i) {
      const Value* v = i < a.pos.size() ? &a.pos[i] : a.Kw(m.names[i].c_str());
      if (v != nullptr) Assign(m.names[i], *v);
      else if (m.kids[1 + i]) Assign(m.names[i], Eval(*m.kids[1 + i]));
      else Assign(m.names[i], Value::Undefined());
    }
    std::string text = Capture(*m.kids[0]);
    // Template-level changes made inside the macro stay inside it (Jinja scoping).
    return Value::Str(std::move(text));
  }

  std::vector<Value> Iterate(const Value& v, int line) {
    std::vector<Value> items;
    switch (v.kind) {
      case Kind::kUndefined: return items;  // Jinja iterates an undefined value as empty
      case Kind::kList: return *v.list;
      case Kind::kDict:
        for (const auto& kv : *v.dict) items.push_back(Value::Str(kv.first));
        return items;
      case Kind::kString:
        for (auto [off, len] : CodePoints(v.s)) items.push_back(Value::Str(v.s.substr(off, len)));
        return items;
      default:
        Fail(line, std::string("cannot iterate over a ") + KindName(v));
    }
  }

  void Bind(const std::vector<std::string>& targets, const Value& item, int line) {
    if (targets.size() == 1) {
      Assign(targets[0], item);
      return;
    }
    if (item.kind != Kind::kList || item.list->size() != targets.size()) {
      Fail(line, "cannot unpack a " + std::string(KindName(item)) + " into " + std::to_string(targets.size()) +
                     " loop variables");
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], (*item.list)[i]);
  }

  void ExecFor(const Node& n) {
    std::vector<Value> items = Iterate(Eval(*n.kids[0]), n.line);
    if (n.extra) {
      std::vector<Value> kept;
      for (const Value& it : items) {
        CountIteration(n.line);
        scopes_.emplace_back();
        Bind(n.names, it, n.line);
        const bool keep = Truthy(Eval(*n.extra));
        scopes_.pop_back();
        if (keep) kept.push_back(it);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.flag) Exec(*n.kids[2]);
      return;
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      CountIteration(n.line);
      scopes_.emplace_back();
      Bind(n.names, items[static_cast<size_t>(i)], n.line);
      Dict loop = {
          {"index", Value::Int(i + 1)},       {"index0", Value::Int(i)},
          {"revindex", Value::Int(len - i)},  {"revindex0", Value::Int(len - i - 1)},
          {"first", Value::Bool(i == 0)},     {"last", Value::Bool(i == len - 1)},
          {"length", Value::Int(len)},        {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},
          {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::Undefined()},
          {"nextitem", i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value::Undefined()},
      };
      Assign("loop", Value::MakeDict(std::move(loop)));
      try {
        Exec(*n.kids[1]);
      } catch (const LoopControl& c) {
        scopes_.pop_back();
        if (c.is_break) return;
        continue;
      }
      scopes_.pop_back();
    }
  }

  // ---- expressions ----
  // Every value is built inside some Eval, so checking here bounds the nesting of all values
  // (their printing, comparison and destruction recurse).
  Value Eval(const Node& n) {
    Value v = EvalNode(n);
    if (v.depth > static_cast<uint32_t>(limits_.max_nesting_depth)) {
      LimitHit("line " + std::to_string(n.line) + ": values nested deeper than " +
               std::to_string(limits_.max_nesting_depth) + " levels");
    }
    return v;
  }

  Value EvalNode(const Node& n) {
    switch (n.kind) {
      case NodeKind::kLiteral:
        return n.value;
      case NodeKind::kName: {
        const Value* v = Lookup(n.name);
        if (v != nullptr) return *v;
        Value u;
        u.s = n.name;  // remembered for error messages
        return u;
      }
      case NodeKind::kAttr:
        return GetAttr(Eval(*n.kids[0]), n.name, n.line);
      case NodeKind::kItem:
        return GetItem(Eval(*n.kids[0]), Eval(*n.kids[1]), n.line);
      case NodeKind::kSlice:
        return Slice(n);
      case NodeKind::kCall:
        return Call(n);
      case NodeKind::kFilter:
        return Filter(n);
      case NodeKind::kTest: {
        const bool r = Test(n);
        return Value::Bool(n.flag ? !r : r);
      }
      case NodeKind::kNot:
        return Value::Bool(!Truthy(Eval(*n.kids[0])));
      case NodeKind::kNeg:
      case NodeKind::kPos: {
        Value v = Eval(*n.kids[0]);
        if (!IsNumber(v)) Fail(n.line, std::string("unary minus/plus on a ") + KindName(v));
        if (n.kind == NodeKind::kPos) return v.kind == Kind::kBool ? Value::Int(AsInt(v)) : v;
        if (v.kind == Kind::kFloat) return Value::Float(-v.f);
        if (AsInt(v) == std::numeric_limits<int64_t>::min()) Fail(n.line, "integer overflow");
        return Value::Int(-AsInt(v));
      }
      case NodeKind::kAnd: {
        Value l = Eval(*n.kids[0]);
        return Truthy(l) ? Eval(*n.kids[1]) : l;
      }
      case NodeKind::kOr: {
        Value l = Eval(*n.kids[0]);
        return Truthy(l) ? l : Eval(*n.kids[1]);
      }
      case NodeKind::kBinary:
        return BinaryOp(n.name, Eval(*n.kids[0]), Eval(*n.kids[1]), n.line);
      case NodeKind::kCompare: {
        Value l = Eval(*n.kids[0]);
        for (size_t i = 0; i < n.names.size(); ++i) {
          Value r = Eval(*n.kids[i + 1]);
          if (!Compare(n.names[i], l, r, n.line)) return Value::Bool(false);
          l = std::move(r);
        }
        return Value::Bool(true);
      }
      case NodeKind::kCond:
        if (Truthy(Eval(*n.kids[1]))) return Eval(*n.kids[0]);
        return n.kids[2] ? Eval(*n.kids[2]) : Value::Undefined();
      case NodeKind::kListLit: {
        List items;
        for (const auto& k : n.kids) items.push_back(Eval(*k));
        CheckSize(items.size(), n.line);
        return n.flag ? Value::MakeTuple(std::move(items)) : Value::MakeList(std::move(items));
      }
      case NodeKind::kDictLit: {
        Dict items;
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          Value k = Eval(*n.kids[i]);
          if (k.kind != Kind::kString) Unsupported(n.line, "dict keys that are not strings");
          Value v = Eval(*n.kids[i + 1]);
          bool replaced = false;
          for (auto& [ek, ev] : items) {
            if (ek == k.s) { ev = v; replaced = true; }
          }
          if (!replaced) items.emplace_back(k.s, std::move(v));
        }
        return Value::MakeDict(std::move(items));
      }
      default:
        Fail(n.line, "internal: statement in expression position");
    }
  }

  [[noreturn]] void UndefinedUse(const Value& v, const std::string& what, int line) {
    Fail(line, (v.s.empty() ? std::string("an undefined value") : "'" + v.s + "' is undefined and") +
                   (v.s.empty() ? " has no " : " has no ") + what);
  }

  static Value Method(const Value& self, const char* name) {
    Value f;
    f.kind = Kind::kFunction;
    f.s = name;
    f.list = std::make_shared<List>(List{self});
    return f;
  }

  Value GetAttr(const Value& obj, const std::string& name, int line) {
    if (obj.kind == Kind::kUndefined) UndefinedUse(obj, "attribute '" + name + "'", line);
    if (obj.kind == Kind::kDict) {
      static const char* const kDictMethods[] = {"get", "items", "keys", "values"};
      for (const char* m : kDictMethods) {
        if (name == m) return Method(obj, m);
      }
    }
    if (obj.kind == Kind::kDict || obj.kind == Kind::kNamespace) {
      const Value* v = DictFind(*obj.dict, name);
      if (v != nullptr) return *v;
    }
    if (obj.kind == Kind::kString) {
      static const char* const kStrMethods[] = {"strip", "lstrip", "rstrip", "startswith", "endswith",
                                                "split", "upper", "lower", "replace"};
      for (const char* m : kStrMethods) {
        if (name == m) return Method(obj, m);
      }
    }
    Value u;
    u.s = name;
    return u;
  }

  Value GetItem(const Value& obj, const Value& key, int line) {
    if (obj.kind == Kind::kUndefined) UndefinedUse(obj, "item", line);
    if (obj.kind == Kind::kDict || obj.kind == Kind::kNamespace) {
      if (key.kind == Kind::kString) {
        const Value* v = DictFind(*obj.dict, key.s);
        if (v != nullptr) return *v;
        Value u;
        u.s = key.s;
        return u;
      }
      return Value::Undefined();
    }
    if (obj.kind == Kind::kList && (obj.i == kDictView || obj.i == kIterator)) return Value::Undefined();
    if ((obj.kind == Kind::kList || obj.kind == Kind::kString) && (key.kind == Kind::kInt || key.kind == Kind::kBool)) {
      int64_t i = AsInt(key);
      if (obj.kind == Kind::kList) {
        const int64_t n = static_cast<int64_t>(obj.list->size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::Undefined();
        return (*obj.list)[static_cast<size_t>(i)];
      }
      const auto cps = CodePoints(obj.s);
      const int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined();
      return Value::Str(obj.s.substr(cps[static_cast<size_t>(i)].first, cps[static_cast<size_t>(i)].second));
    }
    if (key.kind == Kind::kString) return GetAttr(obj, key.s, line);  // Jinja falls back to getattr
    return Value::Undefined();
  }

  Value Slice(const Node& n) {
    Value obj = Eval(*n.kids[0]);
    if (obj.kind == Kind::kUndefined) UndefinedUse(obj, "slice", n.line);
    auto bound = [&](const NodePtr& p, bool* present) -> int64_t {
      *present = false;
      if (!p) return 0;
      Value v = Eval(*p);
      if (v.kind == Kind::kNone) return 0;
      if (v.kind != Kind::kInt && v.kind != Kind::kBool) Fail(n.line, "slice indices must be integers");
      *present = true;
      return AsInt(v);
    };
    bool has_start, has_stop, has_step;
    int64_t start = bound(n.kids[1], &has_start);
    int64_t stop = bound(n.kids[2], &has_stop);
    int64_t step = bound(n.kids[3], &has_step);
    if (!has_step) step = 1;
    if (step == 0) Fail(n.line, "slice step cannot be zero");
    std::vector<std::pair<size_t, size_t>> cps;
    int64_t len = 0;
    if (obj.kind == Kind::kList) {
      if (obj.i == kDictView || obj.i == kIterator) Fail(n.line, "cannot slice a dict view or iterator");
      len = static_cast<int64_t>(obj.list->size());
    } else if (obj.kind == Kind::kString) {
      cps = CodePoints(obj.s);
      len = static_cast<int64_t>(cps.size());
    } else {
      Fail(n.line, std::string("cannot slice a ") + KindName(obj));
    }
    // Python's slice.indices().
    auto clamp = [&](int64_t v, bool present, int64_t dflt) {
      if (!present) return dflt;
      if (v < 0) v += len;
      if (step > 0) return std::clamp<int64_t>(v, 0, len);
      return std::clamp<int64_t>(v, -1, len - 1);
    };
    start = clamp(start, has_start, step > 0 ? 0 : len - 1);
    stop = clamp(stop, has_stop, step > 0 ? len : -1);
    List items;
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.kind == Kind::kList) items.push_back((*obj.list)[static_cast<size_t>(i)]);
      else s.append(obj.s, cps[static_cast<size_t>(i)].first, cps[static_cast<size_t>(i)].second);
    }
    if (obj.kind == Kind::kList) {
      Value r = Value::MakeList(std::move(items));
      r.b = obj.b;
      r.i = obj.i;  // a slice of a range is a range
      return r;
    }
    return Value::Str(std::move(s));
  }


  Args EvalArgs(const Node& n, size_t first) {
    Args a;
    const size_t n_kw = n.names.size();
    const size_t n_pos = n.kids.size() - first - n_kw;
    for (size_t i = 0; i < n_pos; ++i) a.pos.push_back(Eval(*n.kids[first + i]));
    for (size_t i = 0; i < n_kw; ++i) a.kw.emplace_back(n.names[i], Eval(*n.kids[first + n_pos + i]));
    return a;
  }

  const std::string& StrArg(const Value* v, const char* fn, int line) {
    if (v == nullptr || v->kind != Kind::kString) Fail(line, std::string(fn) + ": expected a string argument");
    return v->s;
  }

  Value Call(const Node& n) {
    Value callee = Eval(*n.kids[0]);
    if (callee.kind == Kind::kUndefined && n.kids[0]->kind == NodeKind::kAttr) {
      // Python has many more methods (str.format, str.title, ...) than we implement.
      Unsupported(n.line, "the method '" + n.kids[0]->name + "()'");
    }
    if (callee.kind == Kind::kUndefined) {
      Fail(n.line, callee.s.empty() ? "call of an undefined value" : "'" + callee.s + "' is undefined");
    }
    if (callee.kind != Kind::kFunction) Fail(n.line, std::string("a ") + KindName(callee) + " is not callable");
    Args a = EvalArgs(n, 1);
    const std::string& fn = callee.s;
    const int line = n.line;
    if (callee.macro != nullptr) return CallMacro(*callee.macro, a, line);
    if (!callee.list) {
      if (fn == "raise_exception") {
        const Value* m = a.Get(0, "message");
        throw JinjaError{StatusCode::kInvalidArgument,
                         "chat template rejected the messages: " + (m ? ToStr(*m, line) : std::string())};
      }
      if (fn == "strftime_now") {
        const std::string& fmt = StrArg(a.Get(0, "format"), "strftime_now", line);
        const std::time_t t = static_cast<std::time_t>(unix_time_);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char buf[256];
        const size_t len = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
        if (len == 0 && !fmt.empty()) Fail(line, "strftime_now: format too long or empty result");
        return Value::Str(std::string(buf, len));
      }
      if (fn == "namespace" || fn == "dict") {
        Dict d;
        if (!a.pos.empty()) {
          if (a.pos.size() != 1 || a.pos[0].kind != Kind::kDict) Fail(line, fn + "(): expected keyword arguments");
          d = *a.pos[0].dict;
        }
        for (auto& kv : a.kw) d.push_back(kv);
        Value v = Value::MakeDict(std::move(d));
        if (fn == "namespace") {
          v.kind = Kind::kNamespace;
          v.depth = 1;  // mutable: its contents are bounded when assigned instead
          namespaces_.push_back(v.dict);
        }
        return v;
      }
      if (fn == "range") {
        int64_t start = 0, stop = 0, step = 1;
        for (const Value& v : a.pos) {
          if (v.kind != Kind::kInt && v.kind != Kind::kBool) Fail(line, "range(): arguments must be integers");
        }
        if (a.pos.size() == 1) stop = AsInt(a.pos[0]);
        else if (a.pos.size() >= 2) { start = AsInt(a.pos[0]); stop = AsInt(a.pos[1]); }
        if (a.pos.size() == 3) step = AsInt(a.pos[2]);
        if (a.pos.empty() || a.pos.size() > 3) Fail(line, "range(): expected 1 to 3 arguments");
        if (step == 0) Fail(line, "range(): step must not be zero");
        List items;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
          if (static_cast<int64_t>(items.size()) >= limits_.max_loop_iterations) LimitHit("range() too long");
          items.push_back(Value::Int(i));
        }
        Value r = Value::MakeList(std::move(items));
        r.i = kRange;
        return r;
      }
      Fail(line, "unknown function '" + fn + "'");
    }
    const Value& self = (*callee.list)[0];
    if (self.kind == Kind::kDict) {
      if (fn == "get") {
        const std::string& key = StrArg(a.Get(0, "key"), "get", line);
        const Value* v = DictFind(*self.dict, key);
        if (v != nullptr) return *v;
        const Value* d = a.Get(1, "default");
        return d ? *d : Value::None();
      }
      List items;
      for (const auto& [k, v] : *self.dict) {
        if (fn == "items") items.push_back(Value::MakeTuple({Value::Str(k), v}));
        else if (fn == "keys") items.push_back(Value::Str(k));
        else items.push_back(v);
      }
      Value view = Value::MakeList(std::move(items));
      view.i = kDictView;
      return view;
    }
    // String methods.
    const std::string& s = self.s;
    if (fn == "strip" || fn == "lstrip" || fn == "rstrip") {
      const Value* chars = a.Get(0, "chars");
      const std::string* set = (chars && chars->kind == Kind::kString) ? &chars->s : nullptr;
      if (chars && chars->kind != Kind::kString && chars->kind != Kind::kNone) Fail(line, fn + ": expected a string");
      return Value::Str(PyStrip(s, fn != "rstrip", fn != "lstrip", set));
    }
    if (fn == "startswith" || fn == "endswith") {
      const Value* p = a.Get(0, "prefix");
      std::vector<std::string> cands;
      if (p && p->kind == Kind::kString) cands.push_back(p->s);
      else if (p && p->kind == Kind::kList) {
        for (const Value& x : *p->list) cands.push_back(StrArg(&x, fn.c_str(), line));
      } else Fail(line, fn + ": expected a string");
      for (const std::string& c : cands) {
        if (fn == "startswith" ? s.starts_with(c) : s.ends_with(c)) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    if (fn == "upper" || fn == "lower") return Value::Str(CaseMap(s, fn == "upper", line));
    if (fn == "replace") {
      const Value* cnt = a.Get(2, "count");
      return Value::Str(Replace(s, StrArg(a.Get(0, "old"), "replace", line), StrArg(a.Get(1, "new"), "replace", line),
                                cnt ? AsInt(*cnt) : -1, line));
    }
    if (fn == "split") {
      const Value* sep = a.Get(0, "sep");
      const Value* maxsplit = a.Get(1, "maxsplit");
      int64_t max = maxsplit ? AsInt(*maxsplit) : -1;
      List parts;
      if (sep == nullptr || sep->kind == Kind::kNone) {
        // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
        size_t i = 0;
        const auto cps = CodePoints(s);
        size_t k = 0;
        while (k < cps.size()) {
          size_t len = 0;
          while (k < cps.size() && IsPySpace(DecodeAt(s, cps[k].first, &len))) ++k;
          if (k == cps.size()) break;
          if (max >= 0 && static_cast<int64_t>(parts.size()) == max) {
            std::string rest = PyStrip(std::string_view(s).substr(cps[k].first), false, true, nullptr);
            parts.push_back(Value::Str(rest));
            break;
          }
          i = k;
          while (k < cps.size() && !IsPySpace(DecodeAt(s, cps[k].first, &len))) ++k;
          const size_t from = cps[i].first;
          const size_t to = k < cps.size() ? cps[k].first : s.size();
          parts.push_back(Value::Str(s.substr(from, to - from)));
        }
      } else {
        const std::string& d = StrArg(sep, "split", line);
        if (d.empty()) Fail(line, "split: empty separator");
        size_t from = 0;
        while (true) {
          const size_t at = (max >= 0 && static_cast<int64_t>(parts.size()) == max) ? std::string::npos : s.find(d, from);
          if (at == std::string::npos) {
            parts.push_back(Value::Str(s.substr(from)));
            break;
          }
          parts.push_back(Value::Str(s.substr(from, at - from)));
          from = at + d.size();
        }
      }
      return Value::MakeList(std::move(parts));
    }
    Fail(line, "unknown method '" + fn + "'");
  }

  std::string CaseMap(const std::string& s, bool upper, int line) {
    if (!IsAscii(s)) Unsupported(line, "upper/lower case mapping of non-ASCII text");
    std::string r = s;
    for (char& c : r) c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
    return r;
  }

  std::string Replace(const std::string& s, const std::string& from, const std::string& to, int64_t count, int line) {
    if (from.empty()) Unsupported(line, "replace() with an empty search string");
    std::string r;
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      const size_t at = s.find(from, pos);
      if (at == std::string::npos) break;
      r.append(s, pos, at - pos);
      r += to;
      CheckSize(r.size(), line);
      pos = at + from.size();
      ++done;
    }
    r.append(s, pos);
    CheckSize(r.size(), line);
    return r;
  }

  Value Filter(const Node& n) {
    Value v = Eval(*n.kids[0]);
    Args a = EvalArgs(n, 1);
    return ApplyFilter(n.name, v, a, n.line);
  }

  // The attribute or item `path` ("a" or "a.b") of `item`, as selectattr/map look it up.
  Value Attribute(const Value& item, const std::string& path, int line) {
    Value cur = item;
    size_t from = 0;
    while (true) {
      const size_t dot = path.find('.', from);
      const std::string part = path.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
      if (cur.kind == Kind::kUndefined) return cur;
      cur = GetItem(cur, Value::Str(part), line);
      if (dot == std::string::npos) return cur;
      from = dot + 1;
    }
  }

  Value ApplyFilter(const std::string& f, const Value& v, const Args& a, int line) {
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      const bool by_attr = f == "selectattr" || f == "rejectattr";
      const bool keep_if = f == "select" || f == "selectattr";
      size_t next = 0;
      std::string attr;
      if (by_attr) {
        if (a.pos.empty() || a.pos[0].kind != Kind::kString) Fail(line, f + ": expected an attribute name");
        attr = a.pos[0].s;
        next = 1;
      }
      std::string test;
      if (a.pos.size() > next) {
        if (a.pos[next].kind != Kind::kString) Fail(line, f + ": expected a test name");
        test = a.pos[next].s;
      }
      if (!a.kw.empty()) Unsupported(line, f + " with keyword arguments");
      Args targs;
      for (size_t i = next + 1; i < a.pos.size(); ++i) targs.pos.push_back(a.pos[i]);
      List kept;
      // Jinja iterates only a truthy sequence: none selects nothing.
      for (const Value& item : v.kind == Kind::kNone ? std::vector<Value>() : Iterate(v, line)) {
        const Value x = by_attr ? Attribute(item, attr, line) : item;
        const bool pass = test.empty() ? Truthy(x) : TestValue(test, x, targs, line);
        if (pass == keep_if) kept.push_back(item);
      }
      Value r = Value::MakeList(std::move(kept));
      r.i = kIterator;
      return r;
    }
    if (f == "map") {
      const Value* attr = a.Kw("attribute");
      if (attr == nullptr || !a.pos.empty()) Unsupported(line, "map() other than map(attribute=...)");
      if (attr->kind != Kind::kString) Fail(line, "map: attribute must be a string");
      const Value* dflt = a.Kw("default");
      List out;
      for (const Value& item : v.kind == Kind::kNone ? std::vector<Value>() : Iterate(v, line)) {
        Value x = Attribute(item, attr->s, line);
        if (x.kind == Kind::kUndefined && dflt != nullptr) x = *dflt;
        out.push_back(std::move(x));
      }
      Value r = Value::MakeList(std::move(out));
      r.i = kIterator;
      return r;
    }
    if (f == "trim") {
      const Value* chars = a.Get(0, "chars");
      const std::string* set = (chars && chars->kind == Kind::kString) ? &chars->s : nullptr;
      return Value::Str(PyStrip(ToStr(v, line), true, true, set));
    }
    if (f == "length" || f == "count") {
      switch (v.kind) {
        case Kind::kUndefined: return Value::Int(0);
        case Kind::kString: return Value::Int(static_cast<int64_t>(CodePointCount(v.s)));
        case Kind::kList:
          if (v.i == kIterator) Fail(line, "length of an iterator (convert it with '| list')");
          return Value::Int(static_cast<int64_t>(v.list->size()));
        case Kind::kDict: return Value::Int(static_cast<int64_t>(v.dict->size()));
        default: Fail(line, std::string("length of a ") + KindName(v));
      }
    }
    if (f == "tojson") {
      const Value* indent = a.Get(0, "indent");
      const Value* sort_keys = a.Kw("sort_keys");
      const Value* ensure_ascii = a.Kw("ensure_ascii");
      if (a.Kw("separators")) Unsupported(line, "tojson(separators=...)");
      if (ensure_ascii && Truthy(*ensure_ascii)) Unsupported(line, "tojson(ensure_ascii=true)");
      int ind = -1;
      if (indent && indent->kind != Kind::kNone) {
        if (indent->kind != Kind::kInt) Unsupported(line, "tojson indent that is not an integer");
        ind = static_cast<int>(std::clamp<int64_t>(indent->i, 0, 64));
      }
      std::string out;
      Json(v, ind, sort_keys && Truthy(*sort_keys), 0, &out, line);
      CheckSize(out.size(), line);
      return Value::Str(std::move(out));
    }
    if (f == "string") return Value::Str(ToStr(v, line));
    if (f == "safe") return v;
    if (f == "upper" || f == "lower") return Value::Str(CaseMap(ToStr(v, line), f == "upper", line));
    if (f == "default" || f == "d") {
      const Value* dflt = a.Get(0, "default_value");
      const Value* boolean = a.Get(1, "boolean");
      const bool use = v.kind == Kind::kUndefined || (boolean && Truthy(*boolean) && !Truthy(v));
      if (use) return dflt ? *dflt : Value::Str("");
      return v;
    }
    if (f == "join") {
      const Value* sep = a.Get(0, "d");
      if (a.Get(1, "attribute")) Unsupported(line, "join(attribute=...)");
      const std::string d = sep ? ToStr(*sep, line) : "";
      std::string out;
      bool first = true;
      for (const Value& it : Iterate(v, line)) {
        if (!first) out += d;
        first = false;
        out += ToStr(it, line);
        CheckSize(out.size(), line);
      }
      return Value::Str(std::move(out));
    }
    if (f == "first" || f == "last") {
      std::vector<Value> items = Iterate(v, line);
      if (items.empty()) return Value::Undefined();
      return f == "first" ? items.front() : items.back();
    }
    if (f == "list") return Value::MakeList(Iterate(v, line));
    if (f == "reverse") {
      if (v.kind == Kind::kString) {
        std::string r;
        const auto cps = CodePoints(v.s);
        for (auto it = cps.rbegin(); it != cps.rend(); ++it) r.append(v.s, it->first, it->second);
        return Value::Str(std::move(r));
      }
      std::vector<Value> items = Iterate(v, line);
      std::reverse(items.begin(), items.end());
      Value r = Value::MakeList(std::move(items));
      r.i = kIterator;  // Python's reversed()
      return r;
    }
    if (f == "replace") {
      const Value* cnt = a.Get(2, "count");
      return Value::Str(Replace(ToStr(v, line), StrArg(a.Get(0, "old"), "replace", line),
                                StrArg(a.Get(1, "new"), "replace", line), cnt ? AsInt(*cnt) : -1, line));
    }
    if (f == "items") {
      if (v.kind == Kind::kUndefined) return Value::MakeList({});
      if (v.kind != Kind::kDict) Fail(line, std::string("items of a ") + KindName(v));
      List items;
      for (const auto& [k, x] : *v.dict) items.push_back(Value::MakeTuple({Value::Str(k), x}));
      Value r = Value::MakeList(std::move(items));
      r.i = kIterator;  // a generator in Jinja
      return r;
    }
    if (f == "int") {
      if (v.kind == Kind::kInt || v.kind == Kind::kBool) return Value::Int(AsInt(v));
      if (v.kind == Kind::kFloat && std::isfinite(v.f) && std::fabs(v.f) < 9e18) return Value::Int(static_cast<int64_t>(v.f));
      if (v.kind == Kind::kString) {
        const std::string t = PyStrip(v.s, true, true, nullptr);
        int64_t x = 0;
        auto r = std::from_chars(t.data(), t.data() + t.size(), x);
        if (r.ec == std::errc() && r.ptr == t.data() + t.size()) return Value::Int(x);
      }
      const Value* dflt = a.Get(0, "default");
      return dflt ? *dflt : Value::Int(0);
    }
    if (f == "abs") {
      if (v.kind == Kind::kFloat) return Value::Float(std::fabs(v.f));
      if (v.kind == Kind::kInt || v.kind == Kind::kBool) {
        if (AsInt(v) == std::numeric_limits<int64_t>::min()) Fail(line, "integer overflow");
        return Value::Int(std::llabs(AsInt(v)));
      }
      Fail(line, std::string("abs of a ") + KindName(v));
    }
    if (f == "capitalize") {
      std::string s = ToStr(v, line);
      if (!IsAscii(s)) Unsupported(line, "capitalize of non-ASCII text");
      for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
      }
      return Value::Str(std::move(s));
    }
    Unsupported(line, "the filter '" + f + "'");
  }

  bool Test(const Node& n) {
    Value v = Eval(*n.kids[0]);
    Args a = EvalArgs(n, 1);
    return TestValue(n.name, v, a, n.line);
  }

  bool TestValue(const std::string& t, const Value& v, const Args& a, int line) {
    if (t == "defined") return v.kind != Kind::kUndefined;
    if (t == "undefined") return v.kind == Kind::kUndefined;
    if (t == "none") return v.kind == Kind::kNone;
    if (t == "string") return v.kind == Kind::kString;
    if (t == "number") return IsNumber(v);
    if (t == "integer") return v.kind == Kind::kInt;
    if (t == "float") return v.kind == Kind::kFloat;
    if (t == "boolean") return v.kind == Kind::kBool;
    if (t == "true") return v.kind == Kind::kBool && v.b;
    if (t == "false") return v.kind == Kind::kBool && !v.b;
    if (t == "mapping") return v.kind == Kind::kDict;
    if (t == "iterable") {
      return v.kind == Kind::kList || v.kind == Kind::kDict || v.kind == Kind::kString || v.kind == Kind::kUndefined;
    }
    if (t == "sequence") {
      return v.kind == Kind::kList || v.kind == Kind::kDict || v.kind == Kind::kString || v.kind == Kind::kUndefined;
    }
    if (t == "callable") return v.kind == Kind::kFunction;
    if (t == "even" || t == "odd") {
      if (v.kind != Kind::kInt && v.kind != Kind::kBool) Fail(line, "'" + t + "' test of a non-integer");
      const bool even = (AsInt(v) % 2) == 0;
      return t == "even" ? even : !even;
    }
    if (t == "eq" || t == "equalto" || t == "ne") {
      if (a.pos.size() != 1) Fail(line, "'" + t + "' test needs one argument");
      const bool eq = Equal(v, a.pos[0]);
      return t == "ne" ? !eq : eq;
    }
    Unsupported(line, "the test '" + t + "'");
  }

  bool Less(const Value& a, const Value& b, int line) {
    if (IsNumber(a) && IsNumber(b)) {
      if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return AsDouble(a) < AsDouble(b);
      return AsInt(a) < AsInt(b);
    }
    if (a.kind == Kind::kString && b.kind == Kind::kString) return a.s < b.s;  // UTF-8 order = code point order
    if (a.kind == Kind::kList && b.kind == Kind::kList) {
      const size_t n = std::min(a.list->size(), b.list->size());
      for (size_t i = 0; i < n; ++i) {
        if (!Equal((*a.list)[i], (*b.list)[i])) return Less((*a.list)[i], (*b.list)[i], line);
      }
      return a.list->size() < b.list->size();
    }
    Fail(line, std::string("cannot order a ") + KindName(a) + " and a " + KindName(b));
  }

  bool Compare(const std::string& op, const Value& l, const Value& r, int line) {
    if (op == "==") return Equal(l, r);
    if (op == "!=") return !Equal(l, r);
    if (op == "in" || op == "notin") {
      bool found = false;
      if (r.kind == Kind::kString) {
        if (l.kind != Kind::kString) Fail(line, std::string("'in <string>' needs a string, not a ") + KindName(l));
        found = r.s.find(l.s) != std::string::npos;
      } else if (r.kind == Kind::kList) {
        for (const Value& x : *r.list) {
          if (Equal(l, x)) { found = true; break; }
        }
      } else if (r.kind == Kind::kDict || r.kind == Kind::kNamespace) {
        found = l.kind == Kind::kString && DictFind(*r.dict, l.s) != nullptr;
      } else if (r.kind != Kind::kUndefined) {
        Fail(line, std::string("'in' on a ") + KindName(r));
      }
      return op == "in" ? found : !found;
    }
    if (l.kind == Kind::kUndefined || r.kind == Kind::kUndefined) {
      UndefinedUse(l.kind == Kind::kUndefined ? l : r, "ordering", line);
    }
    if (op == "<") return Less(l, r, line);
    if (op == ">") return Less(r, l, line);
    if (op == "<=") return !Less(r, l, line);
    return !Less(l, r, line);  // >=
  }

  Value BinaryOp(const std::string& op, const Value& l, const Value& r, int line) {
    if (op == "~") {
      std::string s = ToStr(l, line);
      s += ToStr(r, line);
      CheckSize(s.size(), line);
      return Value::Str(std::move(s));
    }
    if (l.kind == Kind::kUndefined || r.kind == Kind::kUndefined) {
      UndefinedUse(l.kind == Kind::kUndefined ? l : r, "value for '" + op + "'", line);
    }
    if (op == "+") {
      if (l.kind == Kind::kString && r.kind == Kind::kString) {
        CheckSize(l.s.size() + r.s.size(), line);
        return Value::Str(l.s + r.s);
      }
      if (l.kind == Kind::kList && r.kind == Kind::kList && l.b == r.b) {
        CheckSize(l.list->size() + r.list->size(), line);
        List items = *l.list;
        items.insert(items.end(), r.list->begin(), r.list->end());
        Value v = Value::MakeList(std::move(items));
        v.b = l.b;
        return v;
      }
    }
    if (op == "*" && ((l.kind == Kind::kString || l.kind == Kind::kList) && (r.kind == Kind::kInt || r.kind == Kind::kBool))) {
      const int64_t times = std::max<int64_t>(0, AsInt(r));
      const size_t unit = l.kind == Kind::kString ? l.s.size() : l.list->size();
      if (unit != 0 && static_cast<uint64_t>(times) > limits_.max_output_bytes / unit) CheckSize(limits_.max_output_bytes + 1, line);
      if (l.kind == Kind::kString) {
        std::string s;
        for (int64_t i = 0; i < times; ++i) s += l.s;
        return Value::Str(std::move(s));
      }
      List items;
      for (int64_t i = 0; i < times; ++i) items.insert(items.end(), l.list->begin(), l.list->end());
      return Value::MakeList(std::move(items));
    }
    if (op == "%" && l.kind == Kind::kString) Unsupported(line, "printf-style formatting with '%'");
    if (!IsNumber(l) || !IsNumber(r)) {
      Fail(line, "unsupported operand types for '" + op + "': " + KindName(l) + " and " + KindName(r));
    }
    const bool floats = l.kind == Kind::kFloat || r.kind == Kind::kFloat;
    if (op == "/") {
      if (AsDouble(r) == 0.0) Fail(line, "division by zero");
      return Value::Float(AsDouble(l) / AsDouble(r));
    }
    if (floats) {
      const double x = AsDouble(l), y = AsDouble(r);
      if (op == "+") return Value::Float(x + y);
      if (op == "-") return Value::Float(x - y);
      if (op == "*") return Value::Float(x * y);
      if (op == "**") return Value::Float(std::pow(x, y));
      if (y == 0.0) Fail(line, "division by zero");
      if (op == "//") return Value::Float(std::floor(x / y));
      double m = std::fmod(x, y);
      if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
      return Value::Float(m);  // %
    }
    const int64_t x = AsInt(l), y = AsInt(r);
    int64_t res = 0;
    if (op == "+") { if (__builtin_add_overflow(x, y, &res)) Fail(line, "integer overflow"); return Value::Int(res); }
    if (op == "-") { if (__builtin_sub_overflow(x, y, &res)) Fail(line, "integer overflow"); return Value::Int(res); }
    if (op == "*") { if (__builtin_mul_overflow(x, y, &res)) Fail(line, "integer overflow"); return Value::Int(res); }
    if (op == "**") {
      if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
      res = 1;
      for (int64_t i = 0; i < y; ++i) {
        if (__builtin_mul_overflow(res, x, &res)) Fail(line, "integer overflow");
        if (res == 0 || res == 1) break;
      }
      return Value::Int(res);
    }
    if (y == 0) Fail(line, "division by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) Fail(line, "integer overflow");
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) { --q; m += y; }  // Python floors
    return Value::Int(op == "//" ? q : m);
  }

  const Limits& limits_;
  int64_t unix_time_;
  std::string out_;
  int64_t iterations_ = 0;
  std::vector<Scope> scopes_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
  int macro_depth_ = 0;
};

// Newlines to "\n", and one trailing newline dropped (Jinja2 with keep_trailing_newline=False).
std::string NormalizeSource(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s.push_back(src[i]);
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace

Template::Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

Result<Template> Template::Parse(std::string_view source, const Limits& limits) {
  if (source.size() > limits.max_template_bytes) {
    return ResourceExhausted("chat template is " + std::to_string(source.size()) + " bytes (at most " +
                             std::to_string(limits.max_template_bytes) + ")");
  }
  try {
    const std::string src = NormalizeSource(source);
    Parser parser(Lex(src), limits.max_nesting_depth);
    Template t;
    t.root_ = parser.ParseTemplate();
    t.limits_ = limits;
    return t;
  } catch (const JinjaError& e) {
    return Status(e.code, e.message);
  }
}

Result<std::string> Template::Render(const Dict& vars, int64_t unix_time) const {
  try {
    Renderer r(limits_, unix_time);
    return r.Run(*root_, vars);
  } catch (const JinjaError& e) {
    return Status(e.code, e.message);
  }
}

}  // namespace tracemark::jinja
