// RenderReportHtml: ReportData -> one self-contained HTML page (inline CSS and SVG; no script).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fmt/format.h>
#include <map>
#include <set>

#include "tracemark/report/report.h"

namespace tracemark::report {
namespace {

// Histogram: bins of -log10 p, at most this many.
constexpr int kMaxHistogramBins = 30;
// Chart geometry (SVG user units; the SVG scales to the page width).
constexpr double kChartW = 720, kChartH = 260, kPadL = 70, kPadR = 20, kPadT = 20, kPadB = 46;
// Counts below this are drawn at the floor of the log axis.
constexpr double kLogFloor = -3.0;

constexpr const char* kCss = R"css(
:root{--ink:#1d2430;--muted:#5b6575;--line:#d5dae1;--accent:#1f5fbf;--bad:#b3261e;--good:#1e7b34;--warn:#8a5a00}
*{box-sizing:border-box}
body{font:15px/1.5 "DejaVu Sans",Helvetica,Arial,sans-serif;color:var(--ink);margin:0;background:#fff}
main{max-width:980px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:16px;margin:22px 0 8px}
.meta{color:var(--muted);font-size:13px}
table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:14px}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f8}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.v-radioactive,.v-watermarked,.v-fail{color:var(--bad);font-weight:bold}
.v-clean,.v-ok{color:var(--good);font-weight:bold}
.v-inconclusive{color:var(--warn);font-weight:bold}
.box{border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:10px 0;background:#fafbfc}
.doc{white-space:pre-wrap;word-wrap:break-word;font:13px/1.45 "DejaVu Sans Mono",Menlo,monospace;border:1px solid var(--line);padding:10px;border-radius:4px;background:#fff}
mark{background:#ffe08a;color:inherit;padding:0 1px;border-bottom:2px solid #d49b00}
code,.hash{font:12px "DejaVu Sans Mono",Menlo,monospace;word-break:break-all}
svg{width:100%;height:auto;display:block;margin:6px 0 4px}
svg text{font:12px "DejaVu Sans",Helvetica,Arial,sans-serif;fill:#1d2430}
.legend{font-size:13px;color:var(--muted)}
details summary{cursor:pointer;color:var(--accent)}
@media print{
 body{font-size:11pt}main{max-width:none;padding:0}
 h2{break-after:avoid}section,figure,table,.box,.doc{break-inside:avoid}
 mark,th,.box{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 details{display:block}details>*{display:block}
 @page{size:A4;margin:16mm 14mm}
}
)css";

std::string Num(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > (v < 0 ? 1 : 0); i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// A p-value from its log10, as HTML: "0.034", "3.1 × 10<sup>-21</sup>".
std::string PHtml(double log10_p) {
  if (log10_p >= 0) return "1";
  if (log10_p > -3) return fmt::format("{:.3g}", std::pow(10.0, log10_p));
  const double e = std::floor(log10_p);
  double m = std::pow(10.0, log10_p - e);
  int ei = static_cast<int>(e);
  if (m >= 9.95) {
    m = 1.0;
    ++ei;
  }
  return fmt::format("{:.1f} &times; 10<sup>{}</sup>", m, ei);
}

std::string VerdictHtml(const std::string& verdict) {
  return "<span class=\"v-" + HtmlEscape(verdict) + "\">" + HtmlEscape(verdict) + "</span>";
}

std::string FormatTime(int64_t ms) {
  if (ms <= 0) return "";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

struct Axis {
  double lo, hi;
  double Map(double v, double px_lo, double px_hi) const {
    const double f = hi > lo ? (std::clamp(v, lo, hi) - lo) / (hi - lo) : 0.0;
    return px_lo + f * (px_hi - px_lo);
  }
};

std::string SvgOpen(const std::string& label) {
  return fmt::format(R"(<svg viewBox="0 0 {} {}" role="img" aria-label="{}">)",
                     kChartW, kChartH, HtmlEscape(label)) +
         fmt::format(R"(<rect x="0" y="0" width="{}" height="{}" fill="#fff"/>)", kChartW, kChartH);
}

std::string SvgFrame(const std::string& xlabel, const std::string& ylabel) {
  const double x0 = kPadL, x1 = kChartW - kPadR, y0 = kChartH - kPadB, y1 = kPadT;
  std::string s = fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#1d2430"/>)", x0, y0, x1, y0);
  s += fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#1d2430"/>)", x0, y0, x0, y1);
  s += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)", (x0 + x1) / 2, kChartH - 8, HtmlEscape(xlabel));
  s += fmt::format(R"svg(<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>)svg",
                   (y0 + y1) / 2, (y0 + y1) / 2, HtmlEscape(ylabel));
  return s;
}

// Histogram of per-document -log10 p (flagged documents) against the uniform null's expected
// count per bin, on a log count axis.
std::string HistogramSvg(const ScanEvidence& scan) {
  double max_score = -std::log10(scan.threshold);
  for (const ScanRow& r : scan.rows) max_score = std::max(max_score, -r.log10_p);
  const double width = std::max(1.0, std::ceil(max_score / kMaxHistogramBins));
  const int bins = std::max(1, static_cast<int>(std::ceil(max_score / width)) + 1);
  std::vector<int64_t> observed(static_cast<size_t>(bins), 0);
  for (const ScanRow& r : scan.rows) {
    const int b = std::clamp(static_cast<int>(-r.log10_p / width), 0, bins - 1);
    ++observed[static_cast<size_t>(b)];
  }
  std::vector<double> expected(static_cast<size_t>(bins), 0);
  const double n = static_cast<double>(scan.documents_scanned);
  for (int b = 0; b < bins; ++b) {
    const double a = b * width, c = (b + 1) * width;
    expected[static_cast<size_t>(b)] = n * (std::pow(10.0, -a) - std::pow(10.0, -c));
  }
  int64_t max_obs = 1;
  for (int64_t o : observed) max_obs = std::max(max_obs, o);
  const double top = std::ceil(std::log10(std::max(static_cast<double>(max_obs), std::max(n, 1.0))));
  const Axis ya{kLogFloor, std::max(top, 1.0)};
  const Axis xa{0, bins * width};
  const double x0 = kPadL, x1 = kChartW - kPadR, y0 = kChartH - kPadB, y1 = kPadT;
  std::string s = SvgOpen("Histogram of per-document -log10 p against the null");
  for (int e = static_cast<int>(ya.lo); e <= static_cast<int>(ya.hi); ++e) {
    const double y = ya.Map(e, y0, y1);
    s += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#e4e8ee"/>)", x0, y, x1, y);
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)", x0 - 6, y + 4,
                     e >= 0 ? Num(static_cast<int64_t>(std::llround(std::pow(10.0, e)))) : fmt::format("1e{}", e));
  }
  const double bw = (x1 - x0) / bins;
  for (int b = 0; b < bins; ++b) {
    const double xl = x0 + b * bw;
    const int64_t o = observed[static_cast<size_t>(b)];
    if (o > 0) {
      const double y = ya.Map(std::log10(static_cast<double>(o)), y0, y1);
      s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#1f5fbf"><title>{} documents</title></rect>)",
                       xl + 1, y, bw - 2, y0 - y, o);
    }
  }
  // Null expectation as a step line.
  std::string pts;
  for (int b = 0; b < bins; ++b) {
    const double e = expected[static_cast<size_t>(b)];
    const double y = ya.Map(e > 0 ? std::log10(e) : kLogFloor, y0, y1);
    pts += fmt::format("{:.1f},{:.1f} {:.1f},{:.1f} ", x0 + b * bw, y, x0 + (b + 1) * bw, y);
  }
  s += R"(<polyline points=")" + pts + R"(" fill="none" stroke="#b3261e" stroke-width="2" stroke-dasharray="6 3"/>)";
  const int label_every = std::max(1, bins / 10);
  for (int b = 0; b <= bins; b += label_every) {
    const double x = xa.Map(b * width, x0, x1);
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", x, y0 + 16, b * width);
  }
  // Threshold marker.
  const double tx = xa.Map(-std::log10(scan.threshold), x0, x1);
  s += fmt::format(R"(<line x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}" stroke="#8a5a00" stroke-dasharray="3 3"/>)", tx, y0, tx, y1);
  s += fmt::format(R"(<text x="{:.1f}" y="{}" fill="#8a5a00">scan threshold</text>)", tx + 4, y1 + 12);
  s += SvgFrame("-log10 p of a document (higher = stronger watermark evidence)", "documents (log scale)");
  s += "</svg>";
  return s;
}

std::string CurveSvg(const probe::ProbeResult& r) {
  double max_y = -std::log10(r.alpha) * 1.25;
  int64_t max_x = 1;
  for (const auto& c : r.curve) {
    max_y = std::max(max_y, -c.log10_p * 1.05);
    max_x = std::max(max_x, c.tokens);
  }
  const Axis xa{0, static_cast<double>(max_x)}, ya{0, max_y};
  const double x0 = kPadL, x1 = kChartW - kPadR, y0 = kChartH - kPadB, y1 = kPadT;
  std::string s = SvgOpen("Probe p-value as suspect tokens accumulate");
  for (int k = 0; k <= 5; ++k) {
    const double v = max_y * k / 5;
    const double y = ya.Map(v, y0, y1);
    s += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#e4e8ee"/>)", x0, y, x1, y);
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{:.3g}</text>)", x0 - 6, y + 4, v);
    const double xv = static_cast<double>(max_x) * k / 5;
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", xa.Map(xv, x0, x1), y0 + 16,
                     Num(static_cast<int64_t>(xv)));
  }
  const double ay = ya.Map(-std::log10(r.alpha), y0, y1);
  s += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#b3261e" stroke-dasharray="6 3"/>)", x0, ay, x1, ay);
  s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end" fill="#b3261e">alpha = {}</text>)", x1 - 4, ay - 5, r.alpha);
  std::string pts = fmt::format("{:.1f},{:.1f} ", x0, y0);
  for (const auto& c : r.curve) {
    pts += fmt::format("{:.1f},{:.1f} ", xa.Map(static_cast<double>(c.tokens), x0, x1), ya.Map(-c.log10_p, y0, y1));
  }
  s += R"(<polyline points=")" + pts + R"(" fill="none" stroke="#1f5fbf" stroke-width="2.5"/>)";
  for (const auto& c : r.curve) {
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="#1f5fbf"/>)",
                     xa.Map(static_cast<double>(c.tokens), x0, x1), ya.Map(-c.log10_p, y0, y1));
  }
  s += SvgFrame("suspect tokens examined", "-log10 p (higher = stronger evidence)");
  s += "</svg>";
  return s;
}

bool IsStateChange(const std::string& action) {
  for (const char* k : {"suspend", "reinstate", "terminate", "throttle", "state", "flag", "enforce"}) {
    if (action.find(k) != std::string::npos) return true;
  }
  return false;
}

std::string TimelineSvg(const AccountLedger& a) {
  std::vector<UsageDay> days = a.usage;
  if (days.size() > kMaxTimelineDays) days.erase(days.begin(), days.end() - static_cast<long>(kMaxTimelineDays));
  int64_t max_tok = 1;
  for (const UsageDay& d : days) max_tok = std::max(max_tok, d.prompt_tokens + d.completion_tokens);
  const double x0 = kPadL, x1 = kChartW - kPadR, y0 = kChartH - kPadB, y1 = kPadT + 14;
  const Axis ya{0, static_cast<double>(max_tok)};
  std::string s = SvgOpen("Usage by day and account state changes");
  const size_t n = std::max<size_t>(days.size(), 1);
  const double bw = (x1 - x0) / static_cast<double>(n);
  for (int k = 0; k <= 4; ++k) {
    const double v = static_cast<double>(max_tok) * k / 4;
    const double y = ya.Map(v, y0, y1);
    s += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#e4e8ee"/>)", x0, y, x1, y);
    s += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)", x0 - 6, y + 4, Num(static_cast<int64_t>(v)));
  }
  std::map<std::string, size_t> day_index;
  for (size_t i = 0; i < days.size(); ++i) {
    const UsageDay& d = days[i];
    day_index[d.day] = i;
    const double xl = x0 + static_cast<double>(i) * bw;
    const double yc = ya.Map(static_cast<double>(d.completion_tokens), y0, y1);
    const double yt = ya.Map(static_cast<double>(d.prompt_tokens + d.completion_tokens), y0, y1);
    s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#1f5fbf"><title>{}: {} completion tokens</title></rect>)",
                     xl + 0.5, yc, std::max(bw - 1, 0.5), y0 - yc, HtmlEscape(d.day), d.completion_tokens);
    s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#9db8e3"><title>{}: {} prompt tokens</title></rect>)",
                     xl + 0.5, yt, std::max(bw - 1, 0.5), yc - yt, HtmlEscape(d.day), d.prompt_tokens);
  }
  const size_t label_every = std::max<size_t>(1, days.size() / 6);
  for (size_t i = 0; i < days.size(); i += label_every) {
    s += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", x0 + (static_cast<double>(i) + 0.5) * bw,
                     y0 + 16, HtmlEscape(days[i].day));
  }
  // State changes: a vertical marker on the day of each audit entry that changed the state.
  for (const AuditProof& e : a.audit) {
    if (!IsStateChange(e.action) || e.time_ms <= 0) continue;
    const std::string day = FormatTime(e.time_ms).substr(0, 10);
    auto it = day_index.find(day);
    double x;
    if (it != day_index.end()) {
      x = x0 + (static_cast<double>(it->second) + 0.5) * bw;
    } else if (!days.empty() && day > days.back().day) {
      x = x1 - 2;
    } else if (!days.empty() && day < days.front().day) {
      x = x0 + 2;
    } else {
      x = (x0 + x1) / 2;
    }
    s += fmt::format(R"(<line x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}" stroke="#b3261e" stroke-width="2"/>)", x, y0, x, kPadT);
    s += fmt::format(R"(<text x="{:.1f}" y="{}" fill="#b3261e" text-anchor="middle">{}</text>)", x, kPadT - 4 + 10,
                     HtmlEscape(e.action));
  }
  s += SvgFrame("day (UTC)", "tokens per day");
  s += "</svg>";
  return s;
}

// The document text with the marked spans wrapped in <mark>; every byte outside the tags escaped.
std::string HighlightedText(const SampleDocument& d) {
  std::vector<Span> spans = d.spans;
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.byte_begin < b.byte_begin; });
  std::string out;
  size_t pos = 0;
  for (const Span& sp : spans) {
    const size_t b = std::clamp(sp.byte_begin, pos, d.text.size());
    const size_t e = std::clamp(sp.byte_end, b, d.text.size());
    if (e <= b) continue;
    out += HtmlEscape(std::string_view(d.text).substr(pos, b - pos));
    out += fmt::format(R"(<mark title="window p = 10^{:.1f}">)", sp.log10_p);
    out += HtmlEscape(std::string_view(d.text).substr(b, e - b));
    out += "</mark>";
    pos = e;
  }
  out += HtmlEscape(std::string_view(d.text).substr(pos));
  if (d.truncated) out += "<span class=\"meta\"> [&hellip; truncated]</span>";
  return out;
}

struct AccountSummary {
  int64_t flagged_docs = 0;
  double best_doc_log10 = 0;
  std::optional<double> corpus_log10;
  int64_t corpus_tuples = 0;
  std::vector<std::pair<std::string, double>> probe_log10;  // file, log10 p
};

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters other than tab/newline/CR are not valid in HTML text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          out += "&#xFFFD;";
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string RenderReportHtml(const ReportData& data) {
  std::string h;
  h.reserve(1 << 16);
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  h += "<title>" + HtmlEscape(data.title) + "</title><style>" + kCss + "</style></head><body><main>\n";
  h += "<header><h1>" + HtmlEscape(data.title) + "</h1><p class=\"meta\">Generated " + HtmlEscape(data.generated_at) +
       " by tracemark. Self-contained: no scripts, no external resources.</p></header>\n";

  // Who is under investigation.
  std::set<std::string> accounts(data.accounts.begin(), data.accounts.end());
  accounts.erase("");
  std::map<std::string, AccountSummary> by_account;
  for (const std::string& a : accounts) by_account[a];
  if (data.scan) {
    for (const ScanRow& r : data.scan->rows) {
      if (r.account.empty() || (!accounts.empty() && !accounts.count(r.account))) continue;
      AccountSummary& s = by_account[r.account];
      ++s.flagged_docs;
      s.best_doc_log10 = std::min(s.best_doc_log10, r.log10_p);
    }
    for (const CorpusAccount& c : data.scan->corpus) {
      if (!accounts.empty() && !accounts.count(c.account)) continue;
      by_account[c.account].corpus_log10 = c.log10_p;
      by_account[c.account].corpus_tuples = c.tuples;
    }
  }
  for (const ProbeEvidence& p : data.probes) {
    if (p.result.account) {
      const std::string id = std::to_string(p.result.account->id);
      if (accounts.empty() || accounts.count(id)) by_account[id].probe_log10.push_back({p.file, p.result.account->log10_p_value});
    }
  }
  if (data.ledger) {
    for (const AccountLedger& a : data.ledger->accounts) by_account[a.id];
  }

  // 1. The question.
  h += "<section id=\"question\"><h2>1. The question</h2><p>Every output this provider serves carries a "
       "statistical watermark keyed to the account it was served to. This report asks whether our "
       "outputs appear in the examined data";
  if (!data.probes.empty()) h += " and whether a suspect model was trained on them (&ldquo;radioactivity&rdquo;)";
  if (!accounts.empty()) {
    h += ", and whether they came from account";
    h += accounts.size() > 1 ? "s " : " ";
    bool first = true;
    for (const std::string& a : accounts) {
      h += (first ? "" : ", ") + std::string("<b>") + HtmlEscape(a) + "</b>";
      first = false;
    }
  }
  h += ". Each finding is an exact p-value: the probability of evidence at least this strong if the "
       "data had nothing to do with our watermark. Small p-values are strong evidence; values above "
       "the significance level are not evidence of innocence, only absence of proof.</p></section>\n";

  // 2. Findings per account.
  h += "<section id=\"findings\"><h2>2. Findings</h2>";
  if (by_account.empty()) {
    h += "<p>No account-level evidence in the data given to this report.</p>";
  } else {
    h += "<table><thead><tr><th>Account</th><th>Flagged documents</th><th>Strongest document p</th>"
         "<th>Corpus pooled p</th><th>Probe p (account lanes)</th><th>Ledger state</th></tr></thead><tbody>";
    for (const auto& [id, s] : by_account) {
      std::string state;
      if (data.ledger) {
        for (const AccountLedger& a : data.ledger->accounts) {
          if (a.id == id) state = a.state + (a.state_reason.empty() ? "" : " (" + a.state_reason + ")");
        }
      }
      std::string probes;
      for (const auto& [file, l] : s.probe_log10) probes += (probes.empty() ? "" : "<br>") + PHtml(l);
      h += "<tr><td><b>" + HtmlEscape(id) + "</b></td><td class=\"num\">" + Num(s.flagged_docs) + "</td><td class=\"num\">" +
           (s.flagged_docs > 0 ? PHtml(s.best_doc_log10) : "&ndash;") + "</td><td class=\"num\">" +
           (s.corpus_log10 ? PHtml(*s.corpus_log10) + " <span class=\"meta\">(" + Num(s.corpus_tuples) + " tuples)</span>"
                           : "&ndash;") +
           "</td><td class=\"num\">" + (probes.empty() ? "&ndash;" : probes) + "</td><td>" +
           (state.empty() ? "&ndash;" : HtmlEscape(state)) + "</td></tr>";
    }
    h += "</tbody></table>";
  }
  for (const ProbeEvidence& p : data.probes) {
    h += "<div class=\"box\">Probe <code>" + HtmlEscape(p.file) + "</code> (" + HtmlEscape(p.result.mode) +
         " model): " + VerdictHtml(probe::VerdictName(p.result.verdict)) + ", p = " + PHtml(p.result.log10_p_value) +
         " over " + Num(p.result.tuples_scored) + " unique tuples at alpha = " + fmt::format("{}", p.result.alpha) + ".</div>";
  }
  h += "</section>\n";

  // 3. Data examined.
  h += "<section id=\"data\"><h2>3. Data examined</h2><ul>";
  if (data.scan) {
    const ScanEvidence& s = *data.scan;
    h += "<li>Corpus scan <code>" + HtmlEscape(s.dir) + "</code>: " + Num(s.documents_scanned) + " documents (" +
         Num(s.bytes_scanned) + " bytes) in " + Num(static_cast<int64_t>(s.files.size())) + " file(s); " +
         Num(s.documents_flagged) + " flagged at p &lt; " + fmt::format("{}", s.threshold) + ".";
    if (!s.files.empty()) {
      h += "<details><summary>files</summary><ul>";
      for (const std::string& f : s.files) h += "<li><code>" + HtmlEscape(f) + "</code></li>";
      h += "</ul></details>";
    }
    h += "</li>";
  }
  for (const ProbeEvidence& p : data.probes) {
    const auto& r = p.result;
    h += "<li>Probe <code>" + HtmlEscape(p.file) + "</code>: " + HtmlEscape(r.mode) + " mode, " + Num(r.texts) +
         (r.mode == "open" ? " watermarked texts read, " : " completions, ") + Num(r.tokens_examined) +
         " suspect tokens, " + Num(r.tuples_scored) + " unique tuples scored (" + Num(r.tuples_excluded) +
         " excluded as seen by the suspect, " + Num(r.tuples_duplicate) + " duplicates dropped); scheme <code>" +
         HtmlEscape(r.scheme) + "</code>, key version " + std::to_string(r.key_version) + ".</li>";
  }
  if (data.ledger) {
    const LedgerEvidence& l = *data.ledger;
    h += "<li>Ledger <code>" + HtmlEscape(l.url) + "</code>: audit log of " + Num(static_cast<int64_t>(l.audit_entries)) +
         " entries, " + Num(static_cast<int64_t>(l.checkpoints)) + " signed checkpoints; full verification: " +
         (l.log_verified ? "<span class=\"v-ok\">passed</span>" : "<span class=\"v-fail\">FAILED</span>") +
         (l.public_key_pinned ? " (signatures checked against the keyring's audit key)" : " (key recorded in the ledger, not pinned)") + ".";
    if (!l.problems.empty()) {
      h += "<ul>";
      for (const std::string& p : l.problems) h += "<li class=\"v-fail\">" + HtmlEscape(p) + "</li>";
      h += "</ul>";
    }
    h += "</li>";
  }
  if (!data.scan && data.probes.empty() && !data.ledger) h += "<li>No evidence was given.</li>";
  h += "</ul></section>\n";

  // 4. Score distribution and samples.
  if (data.scan) {
    const ScanEvidence& s = *data.scan;
    h += "<section id=\"distribution\"><h2>4. Score distribution against the null</h2><figure>" + HistogramSvg(s) +
         "<figcaption class=\"legend\">Blue bars: flagged documents per bin of -log10 p. Red dashed line: the "
         "number of documents expected in each bin if no document carried our watermark (p-values uniform over " +
         Num(s.documents_scanned) +
         " documents). Only documents below the scan threshold are recorded by the scan.</figcaption></figure></section>\n";
    h += "<section id=\"samples\"><h2>5. Sample documents</h2>";
    if (s.samples.empty()) {
      h += "<p>No sample text available (no flagged documents, or the corpus files could not be read).</p>";
    }
    for (const SampleDocument& d : s.samples) {
      h += "<h3>Document <code>" + HtmlEscape(d.doc_id) + "</code></h3><p class=\"meta\">p = " + PHtml(d.log10_p) +
           (d.account.empty() ? ", not attributed" : ", attributed to account " + HtmlEscape(d.account)) +
           "; highlighted: windows where the watermark is significant on its own.</p><div class=\"doc\">" +
           HighlightedText(d) + "</div>";
    }
    if (!s.rows.empty()) {
      h += "<details><summary>All flagged documents (" + Num(static_cast<int64_t>(s.rows.size())) +
           ")</summary><table><thead><tr><th>Document</th><th>p</th><th>Tokens scored</th><th>Account</th></tr></thead><tbody>";
      size_t shown = 0;
      for (const ScanRow& r : s.rows) {
        if (++shown > 500) break;
        h += "<tr><td><code>" + HtmlEscape(r.doc_id) + "</code></td><td class=\"num\">" + PHtml(r.log10_p) +
             "</td><td class=\"num\">" + Num(r.tokens_scored) + "</td><td>" +
             (r.account.empty() ? "&ndash;" : HtmlEscape(r.account)) + "</td></tr>";
      }
      h += "</tbody></table></details>";
    }
    h += "</section>\n";
  }

  // 6. Probe curves.
  if (!data.probes.empty()) {
    h += "<section id=\"probe\"><h2>6. Suspect model: radioactivity test</h2><p>The suspect model is "
         "questioned with our watermarked texts; each (context window, token) tuple it produces is scored "
         "once, and tuples it could have copied from what it was shown are excluded, so a model that was "
         "never trained on our outputs gives uniform p-values whatever it reads.</p>";
    for (const ProbeEvidence& p : data.probes) {
      h += "<h3><code>" + HtmlEscape(p.file) + "</code>: " + VerdictHtml(probe::VerdictName(p.result.verdict)) +
           "</h3><figure>" + CurveSvg(p.result) +
           "<figcaption class=\"legend\">-log10 p of the provider-lane test as the suspect's tokens accumulate; "
           "above the red line the result is significant at alpha.</figcaption></figure>";
    }
    h += "</section>\n";
  }

  // 7. Ledger.
  if (data.ledger) {
    h += "<section id=\"ledger\"><h2>7. Account ledger</h2>";
    for (const AccountLedger& a : data.ledger->accounts) {
      h += "<h3>Account " + HtmlEscape(a.id) + (a.name.empty() ? "" : " &ldquo;" + HtmlEscape(a.name) + "&rdquo;") + "</h3>";
      h += "<p class=\"meta\">Created " + HtmlEscape(FormatTime(a.created_at_ms)) + "; state <b>" + HtmlEscape(a.state) + "</b>" +
           (a.state_reason.empty() ? "" : " (" + HtmlEscape(a.state_reason) + ")") +
           (a.org.empty() ? "" : "; organization " + HtmlEscape(a.org)) + ".</p>";
      if (a.usage.empty()) {
        h += "<p>No usage recorded.</p>";
      } else {
        int64_t req = 0, tok = 0;
        for (const UsageDay& d : a.usage) {
          req += d.requests;
          tok += d.prompt_tokens + d.completion_tokens;
        }
        h += "<figure>" + TimelineSvg(a) + "<figcaption class=\"legend\">Tokens per day (dark: completion, light: prompt); " +
             Num(req) + " requests, " + Num(tok) + " tokens over " + Num(static_cast<int64_t>(a.usage.size())) +
             " active day(s). Red markers: state changes from the audit log.</figcaption></figure>";
      }
      if (a.audit.empty()) {
        h += "<p>No audit entries for this account.</p>";
      } else {
        h += "<table><thead><tr><th>#</th><th>Time</th><th>Action</th><th>Actor</th><th>Reason</th><th>Inclusion proof</th></tr></thead><tbody>";
        size_t shown = 0;
        for (const AuditProof& e : a.audit) {
          if (++shown > kMaxAuditEntriesShown) break;
          std::string proof = e.verified ? "<span class=\"v-ok\">verified</span>" : "<span class=\"v-fail\">NOT verified</span>";
          proof += " <span class=\"meta\">in tree of " + Num(static_cast<int64_t>(e.tree_size)) + "</span><details><summary>proof</summary>" +
                   "<div class=\"hash\">entry: " + HtmlEscape(e.body) + "</div><div class=\"hash\">root: " + HtmlEscape(e.root_hex) + "</div>";
          for (size_t k = 0; k < e.path.size(); ++k) {
            proof += "<div class=\"hash\">path[" + std::to_string(k) + "]: " + HtmlEscape(e.path[k]) + "</div>";
          }
          proof += "</details>";
          h += "<tr><td class=\"num\">" + std::to_string(e.index) + "</td><td>" + HtmlEscape(FormatTime(e.time_ms)) + "</td><td>" +
               HtmlEscape(e.action) + "</td><td>" + HtmlEscape(e.actor) + "</td><td>" + HtmlEscape(e.reason) + "</td><td>" + proof +
               "</td></tr>";
        }
        h += "</tbody></table>";
      }
    }
    h += "</section>\n";
  }

  h += "<section id=\"method\"><h2>Method</h2><p class=\"meta\">Per-document p-values are exact tails (Gamma or "
       "binomial) over (context, token) tuples counted once, corrected for the tests combined; an account is named "
       "only when its own key's test is significant after correction for every candidate (docs/watermark.md). "
       "The corpus pooled p counts each tuple once across all flagged documents of the account. The probe follows "
       "Sander et al. (NeurIPS 2024): global de-duplication, exclusion of what the suspect was shown, exact tail "
       "(docs/probe.md). Audit entries are leaves of an RFC 6962 Merkle tree whose roots are signed with Ed25519; "
       "each proof above was checked while this report was written.</p></section>\n";
  h += "</main></body></html>\n";
  return h;
}

}  // namespace tracemark::report
