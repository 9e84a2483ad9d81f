#include "tracemark/redteam/desensitize.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <simdjson.h>
#include <unordered_map>
#include <unordered_set>

#include "tracemark/base/file.h"
#include "tracemark/model/context.h"
#include "tracemark/model/generate.h"
#include "tracemark/model/model.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::redteam {
namespace {

// Phone numbers: digits (with separators) in this range count as one.
constexpr int kMinPhoneDigits = 7;
constexpr int kMaxPhoneDigits = 15;
// A digit run this long (or a letter+digit code this long) is an ID.
constexpr size_t kMinIdChars = 5;
// Paraphrase generation: context and sampling.
constexpr int32_t kParaphraseContext = 1024;
constexpr float kParaphraseTemperature = 0.7f;

bool IsAlpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Common given names (a small built-in list; --names FILE adds more).
const std::unordered_set<std::string>& BuiltinNames() {
  static const std::unordered_set<std::string> names = {
      "James",  "Mary",    "John",    "Patricia", "Robert",  "Jennifer", "Michael", "Linda",   "William", "Elizabeth",
      "David",  "Barbara", "Richard", "Susan",    "Joseph",  "Jessica",  "Thomas",  "Sarah",   "Charles", "Karen",
      "Daniel", "Nancy",   "Matthew", "Lisa",     "Anthony", "Betty",    "Mark",    "Margaret", "Paul",   "Sandra",
      "Steven", "Ashley",  "Andrew",  "Emily",    "Joshua",  "Donna",    "Kevin",   "Michelle", "Brian",  "Carol",
      "George", "Amanda",  "Edward",  "Melissa",  "Ronald",  "Deborah",  "Timothy", "Stephanie", "Jason", "Rebecca",
      "Alice",  "Bob",     "Emma",    "Olivia",   "Noah",    "Liam",     "Sophia",  "Mia",     "Lucas",   "Anna",
      "Maria",  "Peter",   "Laura",   "Julia",    "Martin",  "Hans",     "Pierre",  "Ahmed",   "Wei",     "Yuki"};
  return names;
}

// word -> synonyms (lower case). Built in; chosen for words that are frequent in explanatory text.
const std::unordered_map<std::string, std::vector<std::string>>& Synonyms() {
  static const std::unordered_map<std::string, std::vector<std::string>> table = {
      {"big", {"large", "huge"}}, {"large", {"big", "sizable"}}, {"small", {"little", "tiny"}},
      {"little", {"small"}}, {"important", {"significant", "crucial"}}, {"significant", {"important", "notable"}},
      {"crucial", {"vital", "essential"}}, {"essential", {"vital", "key"}}, {"key", {"main", "central"}},
      {"main", {"primary", "principal"}}, {"primary", {"main", "chief"}}, {"use", {"employ", "utilize"}},
      {"used", {"employed", "utilized"}}, {"using", {"employing", "utilizing"}}, {"uses", {"employs"}},
      {"make", {"create", "produce"}}, {"makes", {"creates", "produces"}}, {"made", {"created", "produced"}},
      {"help", {"assist", "aid"}}, {"helps", {"assists", "aids"}}, {"show", {"demonstrate", "reveal"}},
      {"shows", {"demonstrates", "reveals"}}, {"many", {"numerous", "several"}}, {"several", {"various", "multiple"}},
      {"various", {"diverse", "different"}}, {"different", {"distinct", "diverse"}}, {"also", {"additionally", "too"}},
      {"however", {"nevertheless", "yet"}}, {"therefore", {"thus", "hence"}}, {"thus", {"therefore", "hence"}},
      {"because", {"since", "as"}}, {"but", {"yet", "though"}}, {"often", {"frequently", "commonly"}},
      {"usually", {"typically", "generally"}}, {"typically", {"usually", "normally"}}, {"quickly", {"rapidly", "fast"}},
      {"fast", {"quick", "rapid"}}, {"quick", {"fast", "swift"}}, {"slow", {"gradual", "sluggish"}},
      {"good", {"fine", "great"}}, {"great", {"excellent", "good"}}, {"bad", {"poor", "negative"}},
      {"simple", {"basic", "easy"}}, {"easy", {"simple", "straightforward"}}, {"difficult", {"hard", "tough"}},
      {"hard", {"difficult", "tough"}}, {"problem", {"issue", "question"}}, {"problems", {"issues", "questions"}},
      {"issue", {"problem", "matter"}}, {"answer", {"response", "reply"}}, {"question", {"query", "problem"}},
      {"example", {"instance", "illustration"}}, {"examples", {"instances", "illustrations"}},
      {"method", {"approach", "technique"}}, {"methods", {"approaches", "techniques"}}, {"way", {"manner", "method"}},
      {"ways", {"methods", "means"}}, {"result", {"outcome", "consequence"}}, {"results", {"outcomes", "findings"}},
      {"understand", {"grasp", "comprehend"}}, {"explain", {"describe", "clarify"}}, {"describe", {"explain", "outline"}},
      {"consider", {"examine", "weigh"}}, {"begin", {"start", "commence"}}, {"start", {"begin", "launch"}},
      {"end", {"finish", "close"}}, {"finally", {"lastly", "ultimately"}}, {"first", {"initially", "firstly"}},
      {"need", {"require", "want"}}, {"needs", {"requires", "wants"}}, {"require", {"need", "demand"}},
      {"provide", {"give", "offer"}}, {"provides", {"gives", "offers"}}, {"give", {"provide", "offer"}},
      {"get", {"obtain", "acquire"}}, {"find", {"discover", "locate"}}, {"change", {"alter", "modify"}},
      {"changes", {"alterations", "modifications"}}, {"increase", {"rise", "growth"}}, {"decrease", {"decline", "drop"}},
      {"idea", {"notion", "concept"}}, {"ideas", {"notions", "concepts"}}, {"concept", {"idea", "notion"}},
      {"concepts", {"ideas", "notions"}}, {"part", {"portion", "component"}}, {"parts", {"components", "pieces"}},
      {"whole", {"entire", "complete"}}, {"entire", {"whole", "full"}}, {"complete", {"full", "entire"}},
      {"common", {"frequent", "widespread"}}, {"rare", {"uncommon", "unusual"}}, {"new", {"novel", "fresh"}},
      {"old", {"ancient", "former"}}, {"able", {"capable"}}, {"allow", {"permit", "enable"}},
      {"allows", {"permits", "enables"}}, {"ensure", {"guarantee", "make sure"}}, {"particular", {"specific"}},
      {"specific", {"particular", "precise"}}, {"clear", {"obvious", "plain"}}, {"clearly", {"plainly", "obviously"}},
      {"really", {"truly", "actually"}}, {"very", {"highly", "extremely"}}, {"extremely", {"highly", "very"}},
      {"completely", {"fully", "entirely"}}, {"mostly", {"largely", "mainly"}}, {"mainly", {"mostly", "chiefly"}},
      {"almost", {"nearly", "practically"}}, {"nearly", {"almost"}}, {"about", {"regarding", "concerning"}},
      {"around", {"roughly", "approximately"}}, {"approximately", {"roughly", "about"}},
      {"enough", {"sufficient", "adequate"}}, {"correct", {"right", "accurate"}}, {"accurate", {"precise", "correct"}},
      {"wrong", {"incorrect", "mistaken"}}, {"possible", {"feasible", "potential"}}, {"likely", {"probable"}},
      {"need", {"require"}}, {"step", {"stage", "phase"}}, {"steps", {"stages", "phases"}},
      {"process", {"procedure", "operation"}}, {"system", {"framework", "structure"}}, {"systems", {"frameworks"}},
      {"people", {"individuals", "persons"}}, {"person", {"individual"}}, {"students", {"learners", "pupils"}},
      {"student", {"learner", "pupil"}}, {"study", {"research", "analysis"}}, {"work", {"operate", "function"}},
      {"works", {"operates", "functions"}}, {"working", {"operating", "functioning"}}, {"build", {"construct", "create"}},
      {"try", {"attempt"}}, {"keep", {"retain", "maintain"}}, {"think", {"believe", "reckon"}},
      {"know", {"understand", "recognize"}}, {"look", {"appear", "seem"}}, {"seem", {"appear", "look"}},
      {"seems", {"appears", "looks"}}, {"like", {"such as"}}, {"include", {"contain", "comprise"}},
      {"includes", {"contains", "comprises"}}, {"including", {"such as", "among them"}},
      {"based", {"grounded", "founded"}}, {"effect", {"impact", "influence"}}, {"effects", {"impacts", "influences"}},
      {"impact", {"effect", "influence"}}, {"cause", {"trigger", "produce"}}, {"causes", {"triggers", "produces"}},
      {"reason", {"cause", "motive"}}, {"reasons", {"causes", "grounds"}}, {"amount", {"quantity", "volume"}},
      {"number", {"count", "quantity"}}, {"value", {"amount", "figure"}}, {"values", {"amounts", "figures"}},
      {"high", {"elevated", "great"}}, {"low", {"reduced", "small"}}, {"strong", {"powerful", "robust"}},
      {"weak", {"feeble", "faint"}}, {"interesting", {"intriguing", "fascinating"}}, {"beautiful", {"lovely", "pretty"}},
      {"happy", {"glad", "pleased"}}, {"sure", {"certain", "confident"}}, {"certain", {"sure", "definite"}},
      {"probably", {"likely", "presumably"}}, {"maybe", {"perhaps", "possibly"}}, {"perhaps", {"maybe", "possibly"}},
      {"then", {"next", "afterwards"}}, {"next", {"then", "following"}}, {"before", {"prior to", "ahead of"}},
      {"after", {"following", "once"}}, {"while", {"whereas", "although"}}, {"although", {"though", "while"}},
      {"so", {"thus", "therefore"}}, {"overall", {"in general", "altogether"}}, {"specifically", {"particularly"}},
      {"various", {"assorted"}}, {"focus", {"concentrate", "center"}}, {"understanding", {"grasp", "comprehension"}},
      {"knowledge", {"understanding", "expertise"}}, {"information", {"data", "details"}}, {"details", {"specifics"}},
      {"approach", {"method", "strategy"}}, {"strategy", {"plan", "approach"}}, {"plan", {"scheme", "strategy"}},
      {"goal", {"aim", "objective"}}, {"aim", {"goal", "purpose"}}, {"purpose", {"aim", "goal"}},
      {"benefit", {"advantage", "gain"}}, {"benefits", {"advantages", "gains"}}, {"advantage", {"benefit", "edge"}},
      {"risk", {"danger", "hazard"}}, {"risks", {"dangers", "hazards"}}, {"safe", {"secure", "protected"}},
      {"each", {"every"}}, {"every", {"each"}}, {"all", {"every one of the"}}, {"some", {"certain", "a few"}},
      {"various", {"varied"}}, {"additional", {"extra", "further"}}, {"further", {"additional", "more"}},
      {"other", {"alternative", "different"}}, {"same", {"identical", "equal"}}, {"similar", {"alike", "comparable"}},
      {"called", {"named", "termed"}}, {"known", {"recognized", "famous"}}, {"well", {"nicely", "properly"}},
      {"better", {"superior", "improved"}}, {"best", {"finest", "top"}}, {"worse", {"poorer", "inferior"}},
      // Function words: an attacker who wants a high substitution rate swaps these too.
      {"that", {"which"}}, {"which", {"that"}}, {"this", {"that"}}, {"these", {"those"}}, {"those", {"these"}},
      {"in", {"within"}}, {"on", {"upon"}}, {"with", {"alongside"}}, {"can", {"may", "could"}},
      {"may", {"might"}}, {"might", {"may"}}, {"will", {"shall"}}, {"would", {"could"}}, {"could", {"might"}},
      {"should", {"ought to"}}, {"and", {"as well as", "plus"}}, {"is", {"remains"}}, {"are", {"remain"}},
      {"has", {"possesses"}}, {"have", {"possess"}}, {"it", {"this"}}, {"its", {"their"}}, {"they", {"these"}},
      {"to", {"toward"}}, {"for", {"toward"}}, {"by", {"through"}}, {"as", {"since"}}, {"from", {"out of"}}};
  return table;
}

std::string CopyCase(std::string_view original, std::string replacement) {
  if (!original.empty() && std::isupper(static_cast<unsigned char>(original[0])) && !replacement.empty()) {
    replacement[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(replacement[0])));
  }
  return replacement;
}

std::vector<std::string_view> SplitWhitespace(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !IsSpace(text[j])) ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string Join(const std::vector<std::string_view>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out.append(words[i]);
  }
  return out;
}

// Replaces e-mail addresses.
std::string MaskEmails(std::string_view text, int64_t* n) {
  std::string out;
  size_t copied = 0;
  for (size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
    if (at < copied) continue;
    size_t b = at;
    while (b > copied && (IsAlnum(text[b - 1]) || std::string_view("._%+-").find(text[b - 1]) != std::string_view::npos)) --b;
    size_t e = at + 1;
    bool dot = false;
    while (e < text.size() && (IsAlnum(text[e]) || text[e] == '.' || text[e] == '-')) {
      if (text[e] == '.') dot = true;
      ++e;
    }
    while (e > at + 1 && text[e - 1] == '.') --e;  // a sentence-final period is not the domain's
    if (b == at || e == at + 1 || !dot) continue;
    out.append(text.substr(copied, b - copied));
    out.append("[EMAIL]");
    copied = e;
    ++*n;
  }
  out.append(text.substr(copied));
  return out;
}

bool IsPhoneSeparator(char c) { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+'; }

// Replaces phone-like digit groups: optional '+' / '(' start, digits with ' ', '-', '.', '(', ')'
// separators, 7..15 digits in all.
std::string MaskPhones(std::string_view text, int64_t* n) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const bool can_start = (IsDigit(text[i]) || ((text[i] == '+' || text[i] == '(') && i + 1 < text.size() &&
                                                 IsDigit(text[i + 1]))) &&
                           (i == 0 || !IsAlnum(text[i - 1]));
    if (!can_start) {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i;
    int digits = 0;
    int groups = 0;
    size_t last_digit_end = i;
    while (j < text.size()) {
      const char c = text[j];
      if (IsDigit(c)) {
        if (j == i || !IsDigit(text[j - 1])) ++groups;
        ++digits;
        last_digit_end = j + 1;
      } else if (IsPhoneSeparator(c)) {
        // A short run of separators ("-", ") ", " (") continues the number only if a digit follows.
        size_t k = j;
        while (k < text.size() && IsPhoneSeparator(text[k]) && k - j < 3) ++k;
        if (k >= text.size() || !IsDigit(text[k])) break;
        j = k;
        continue;
      } else {
        break;
      }
      ++j;
    }
    const bool followed_ok = last_digit_end >= text.size() || !IsAlpha(text[last_digit_end]);
    if (digits >= kMinPhoneDigits && digits <= kMaxPhoneDigits && groups >= 2 && followed_ok) {
      out.append("[PHONE]");
      ++*n;
      i = last_digit_end;
    } else {
      // Not a phone: copy the first run of digits unchanged.
      size_t k = i;
      out.push_back(text[k++]);
      while (k < text.size() && IsDigit(text[k])) out.push_back(text[k++]);
      i = k;
    }
  }
  return out;
}

}  // namespace

std::string MaskPii(std::string_view text, const std::vector<std::string>& extra_names, PiiCounts* counts) {
  PiiCounts local;
  PiiCounts* c = counts != nullptr ? counts : &local;
  std::string s = MaskEmails(text, &c->emails);
  s = MaskPhones(s, &c->phones);
  // Words: names, IDs, numbers. Placeholders already written are copied unchanged.
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[' || s[i] == '<') {
      const char close = s[i] == '[' ? ']' : '>';
      size_t j = i + 1;
      while (j < s.size() && (std::isupper(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j < s.size() && j > i + 1 && s[j] == close) {
        out.append(s, i, j + 1 - i);
        i = j + 1;
        continue;
      }
    }
    if (!IsAlnum(s[i])) {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i;
    bool has_digit = false, has_alpha = false;
    while (j < s.size() && (IsAlnum(s[j]) || ((s[j] == '.' || s[j] == ',') && j + 1 < s.size() && IsDigit(s[j + 1]) &&
                                              j > i && IsDigit(s[j - 1])))) {
      has_digit |= IsDigit(s[j]);
      has_alpha |= IsAlpha(s[j]);
      ++j;
    }
    const std::string word = s.substr(i, j - i);
    if (has_digit && has_alpha) {
      if (word.size() >= kMinIdChars) {
        out.append("[ID]");
        ++c->ids;
      } else {
        out.append(word);  // "3D", "H2O", "v2": not identifying
      }
    } else if (has_digit) {
      size_t digits = 0;
      for (char ch : word) digits += IsDigit(ch) ? 1 : 0;
      if (digits >= kMinIdChars && word.find_first_of(".,") == std::string::npos) {
        out.append("[ID]");
        ++c->ids;
      } else {
        out.append("[NUMBER]");
        ++c->numbers;
      }
    } else if (std::isupper(static_cast<unsigned char>(word[0])) &&
               (BuiltinNames().count(word) > 0 ||
                std::find(extra_names.begin(), extra_names.end(), word) != extra_names.end())) {
      out.append("<NAME>");
      ++c->names;
    } else {
      out.append(word);
    }
    i = j;
  }
  return out;
}

std::string NormalizeText(std::string_view text) {
  // Typographic characters to ASCII.
  static const std::vector<std::pair<std::string_view, std::string_view>> kMap = {
      {"\u201c", "\""}, {"\u201d", "\""}, {"\u2018", "'"}, {"\u2019", "'"}, {"\u2013", "-"},
      {"\u2014", " - "}, {"\u2026", "..."}, {"\u00a0", " "}};
  std::string s;
  s.reserve(text.size());
  bool line_start = true;
  size_t i = 0;
  while (i < text.size()) {
    bool mapped = false;
    for (const auto& [from, to] : kMap) {
      if (text.substr(i).starts_with(from)) {
        s.append(to);
        i += from.size();
        mapped = true;
        break;
      }
    }
    if (mapped) {
      line_start = false;
      continue;
    }
    const char c = text[i];
    if (line_start) {
      // Markdown heading and bullet marks at the start of a line.
      size_t j = i;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
      size_t k = j;
      while (k < text.size() && text[k] == '#') ++k;
      if (k > j && k < text.size() && text[k] == ' ') {
        i = k + 1;
        line_start = false;
        continue;
      }
      if (j + 1 < text.size() && (text[j] == '-' || text[j] == '*' || text[j] == '+') && text[j + 1] == ' ') {
        i = j + 2;
        line_start = false;
        continue;
      }
    }
    if (c == '*' || c == '`' || (c == '_' && i + 1 < text.size() && text[i + 1] == '_')) {
      ++i;
      if (c == '_') ++i;
      continue;
    }
    line_start = c == '\n';
    s.push_back(c);
    ++i;
  }
  return Join(SplitWhitespace(s));
}

std::string TruncateWords(std::string_view text, double keep, Rng& rng) {
  std::vector<std::string_view> words = SplitWhitespace(text);
  if (keep >= 1 || words.empty()) return Join(words);
  const size_t n = std::max<size_t>(1, static_cast<size_t>(std::ceil(keep * static_cast<double>(words.size()))));
  const size_t start = rng.Below(words.size() - n + 1);
  return Join(std::vector<std::string_view>(words.begin() + start, words.begin() + start + n));
}

size_t SynonymTableSize() { return Synonyms().size(); }

std::string SubstituteSynonyms(std::string_view text, double rate, Rng& rng, int64_t* words, int64_t* replaced) {
  const auto& table = Synonyms();
  // First pass: count words and candidates, so that about rate x words are replaced overall.
  int64_t n_words = 0, n_candidates = 0;
  std::string lower;
  for (size_t i = 0; i < text.size();) {
    if (!IsAlpha(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && IsAlpha(text[j])) ++j;
    ++n_words;
    lower.assign(text.substr(i, j - i));
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    n_candidates += table.count(lower) > 0 ? 1 : 0;
    i = j;
  }
  if (words != nullptr) *words += n_words;
  if (rate <= 0 || n_candidates == 0) return std::string(text);
  const double p = std::min(1.0, rate * static_cast<double>(n_words) / static_cast<double>(n_candidates));
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (size_t i = 0; i < text.size();) {
    if (!IsAlpha(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i;
    while (j < text.size() && IsAlpha(text[j])) ++j;
    const std::string_view word = text.substr(i, j - i);
    lower.assign(word);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto it = table.find(lower);
    // Mid-word apostrophes ("don't") and hyphenated parts are left alone.
    const bool glued = (i > 0 && (text[i - 1] == '\'' || text[i - 1] == '-')) || (j < text.size() && text[j] == '\'');
    if (it != table.end() && !glued && rng.Chance(p)) {
      out.append(CopyCase(word, it->second[rng.Below(it->second.size())]));
      if (replaced != nullptr) ++*replaced;
    } else {
      out.append(word);
    }
    i = j;
  }
  return out;
}

std::string DeleteWords(std::string_view text, double rate, Rng& rng, int64_t* deleted) {
  std::vector<std::string_view> words = SplitWhitespace(text);
  if (rate <= 0) return Join(words);
  std::vector<std::string_view> kept;
  for (std::string_view w : words) {
    if (rng.Chance(rate)) {
      if (deleted != nullptr) ++*deleted;
    } else {
      kept.push_back(w);
    }
  }
  return Join(kept);
}

std::string DesensitizeText(std::string_view text, const DesensitizeOptions& o, Rng& rng, DesensitizeStats* stats) {
  DesensitizeStats local;
  DesensitizeStats* st = stats != nullptr ? stats : &local;
  std::string s(text);
  if (o.mask_pii) s = MaskPii(s, o.extra_names, &st->pii);
  if (o.normalize) s = NormalizeText(s);
  if (o.synonyms > 0) {
    s = SubstituteSynonyms(s, o.synonyms, rng, &st->words, &st->words_substituted);
  } else {
    st->words += static_cast<int64_t>(SplitWhitespace(s).size());
  }
  if (o.delete_words > 0) s = DeleteWords(s, o.delete_words, rng, &st->words_deleted);
  if (o.truncate < 1) s = TruncateWords(s, o.truncate, rng);
  return s;
}

// ---- Paraphraser ----

struct Paraphraser::Impl {
  std::unique_ptr<Model> model;
  std::unique_ptr<text::Tokenizer> tok;
  std::unique_ptr<Context> ctx;
  uint64_t seed = 0;
};

Paraphraser::Paraphraser() : impl_(std::make_unique<Impl>()) {}
Paraphraser::~Paraphraser() = default;

Result<std::unique_ptr<Paraphraser>> Paraphraser::Create(const std::string& model_path, int threads, uint64_t seed) {
  std::unique_ptr<Paraphraser> p(new Paraphraser());
  TM_ASSIGN_OR_RETURN(p->impl_->model, Model::Load(model_path));
  TM_ASSIGN_OR_RETURN(p->impl_->tok, text::Tokenizer::FromGguf(p->impl_->model->file()));
  ContextOptions copt;
  copt.n_ctx = kParaphraseContext;
  copt.n_threads = threads;
  TM_ASSIGN_OR_RETURN(p->impl_->ctx, Context::Create(*p->impl_->model, copt));
  p->impl_->seed = seed;
  return p;
}

Result<std::string> Paraphraser::Paraphrase(std::string_view text, uint64_t record_seed) {
  Impl& m = *impl_;
  std::vector<int32_t> body = m.tok->Encode(text, false, false);
  if (body.size() > static_cast<size_t>(kMaxParaphraseInputTokens)) body.resize(kMaxParaphraseInputTokens);
  // One paragraph in, one paragraph out: the answer ends at its first blank line.
  const std::string clipped = Join(SplitWhitespace(m.tok->Decode(body, true)));
  // Gemma 3 270M (the default paraphraser) is a base model: a plain completion prompt.
  const std::string prompt = "Rewrite the following text in different words, keeping its meaning.\n\nText: " +
                             clipped + "\n\nParaphrase:";
  std::vector<int32_t> ids = m.tok->Encode(prompt, true, false);
  GenerateOptions g;
  g.max_tokens = static_cast<int32_t>(body.size() * 3 / 2 + 16);
  const int32_t room = kParaphraseContext - static_cast<int32_t>(ids.size()) - 1;
  if (room < 8) return InvalidArgument("text too long to paraphrase");
  g.max_tokens = std::min(g.max_tokens, room);
  g.sampling.temperature = kParaphraseTemperature;
  g.sampling.top_p = 0.95f;
  g.sampling.seed = m.seed * 0x9e3779b97f4a7c15ULL + record_seed;
  // A base model often opens its answer with a blank line, so the paragraph break is looked for
  // after the first non-blank character, not as a stop string (which would end it empty).
  g.stop = {"\nText:"};
  TM_ASSIGN_OR_RETURN(GenerateResult r, Generate(*m.ctx, *m.tok, ids, g));
  std::string_view answer = r.text;
  const size_t first = answer.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return std::string();
  answer.remove_prefix(first);
  if (const size_t brk = answer.find("\n\n"); brk != std::string_view::npos) answer = answer.substr(0, brk);
  return Join(SplitWhitespace(answer));
}

// ---- Files ----

namespace {

bool IsJsonlName(const std::string& path) {
  for (std::string_view ext : {".jsonl", ".json", ".ndjson"}) {
    if (std::string_view(path).ends_with(ext)) return true;
  }
  return false;
}

Result<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > kMaxDesensitizeLineBytes) {
      return InvalidArgument(path + ": line " + std::to_string(lines.size() + 1) + " is longer than " +
                             std::to_string(kMaxDesensitizeLineBytes) + " bytes");
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (lines.size() > kMaxDesensitizeRecords) return InvalidArgument(path + ": too many lines");
  }
  return lines;
}

}  // namespace

Result<DesensitizeStats> DesensitizeFile(const std::string& in_path, const std::string& out_path,
                                         const DesensitizeOptions& o) {
  if (!(o.truncate > 0 && o.truncate <= 1)) return InvalidArgument("--truncate must be in (0, 1]");
  if (!(o.synonyms >= 0 && o.synonyms <= 1)) return InvalidArgument("--synonyms must be in [0, 1]");
  if (!(o.delete_words >= 0 && o.delete_words < 1)) return InvalidArgument("--delete must be in [0, 1)");
  if (!(o.fraction > 0 && o.fraction <= 1)) return InvalidArgument("--fraction must be in (0, 1]");
  if (o.fraction < 1 && o.mix_path.empty()) return InvalidArgument("--fraction needs --mix CLEAN.txt");
  TM_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(in_path));
  std::unique_ptr<Paraphraser> para;
  if (!o.paraphrase_model.empty()) {
    TM_ASSIGN_OR_RETURN(para, Paraphraser::Create(o.paraphrase_model, o.threads, o.seed));
  }
  const bool jsonl = IsJsonlName(in_path);
  DesensitizeStats st;
  std::vector<nlohmann::ordered_json> records;
  simdjson::dom::parser parser;
  for (size_t ln = 0; ln < lines.size(); ++ln) {
    const std::string& line = lines[ln];
    if (line.empty()) continue;
    nlohmann::ordered_json rec;
    std::string text;
    if (jsonl) {
      simdjson::dom::element doc;
      simdjson::dom::object obj;
      if (parser.parse(line).get(doc) != simdjson::SUCCESS || doc.get(obj) != simdjson::SUCCESS) {
        return InvalidArgument(in_path + ":" + std::to_string(ln + 1) + ": not a JSON object");
      }
      bool have_text = false;
      for (auto field : obj) {
        const std::string key(field.key);
        std::string_view sv;
        int64_t iv = 0;
        double dv = 0;
        bool bv = false;
        if (field.value.get(sv) == simdjson::SUCCESS) {
          if (key == o.field) {
            text = std::string(sv);
            have_text = true;
          } else {
            rec[key] = std::string(sv);
          }
        } else if (field.value.get(iv) == simdjson::SUCCESS) {
          rec[key] = iv;
        } else if (field.value.get(dv) == simdjson::SUCCESS) {
          rec[key] = dv;
        } else if (field.value.get(bv) == simdjson::SUCCESS) {
          rec[key] = bv;
        }
      }
      if (!have_text) {
        return InvalidArgument(in_path + ":" + std::to_string(ln + 1) + ": no string field \"" + o.field + "\"");
      }
    } else {
      text = line;
      rec["id"] = in_path + ":" + std::to_string(ln + 1);
    }
    ++st.records_in;
    Rng rng(o.seed * 0x2545f4914f6cdd1dULL + ln * 0x9e3779b97f4a7c15ULL + 1);
    std::string s = DesensitizeText(text, o, rng, &st);
    if (para) {
      TM_ASSIGN_OR_RETURN(s, para->Paraphrase(s, ln));
      ++st.paraphrased;
    }
    if (static_cast<int>(SplitWhitespace(s).size()) < o.min_words) {
      ++st.dropped;
      continue;
    }
    rec["text"] = s;
    if (!o.mix_path.empty()) rec["source"] = "harvest";
    records.push_back(std::move(rec));
  }
  if (!o.mix_path.empty()) {
    TM_ASSIGN_OR_RETURN(std::vector<std::string> clean, ReadLines(o.mix_path));
    std::vector<size_t> usable;
    for (size_t i = 0; i < clean.size(); ++i) {
      if (!SplitWhitespace(clean[i]).empty()) usable.push_back(i);
    }
    const double n_in = static_cast<double>(records.size());
    size_t want = o.fraction >= 1 ? usable.size()
                                  : static_cast<size_t>(std::llround(n_in * (1 - o.fraction) / o.fraction));
    want = std::min(want, usable.size());
    // A seeded partial Fisher-Yates picks which clean lines join.
    Rng rng(o.seed ^ 0xc1ea2ULL);
    for (size_t i = 0; i < want; ++i) {
      std::swap(usable[i], usable[i + rng.Below(usable.size() - i)]);
    }
    usable.resize(want);
    std::sort(usable.begin(), usable.end());
    for (size_t idx : usable) {
      nlohmann::ordered_json rec;
      rec["id"] = "clean-" + std::to_string(idx + 1);
      rec["text"] = o.normalize ? NormalizeText(clean[idx]) : clean[idx];
      rec["source"] = "clean";
      records.push_back(std::move(rec));
      ++st.clean_added;
    }
  }
  if (o.shuffle) {
    Rng rng(o.seed ^ 0x5bu);
    for (size_t i = records.size(); i > 1; --i) std::swap(records[i - 1], records[rng.Below(i)]);
  }
  std::string out;
  for (const auto& r : records) {
    out += r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out.push_back('\n');
  }
  TM_RETURN_IF_ERROR(WriteFileAtomic(out_path, out));
  st.records_out = static_cast<int64_t>(records.size());
  return st;
}

}  // namespace tracemark::redteam
