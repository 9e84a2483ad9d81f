#include "tracemark/report/report.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "tracemark/base/file.h"
#include "tracemark/ledger/audit_log.h"
#include "tracemark/ledger/store.h"
#include "tracemark/policy/server_keys.h"
#include "tracemark/watermark/keyring.h"

namespace tracemark::report {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tm_report_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// ---- A minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium writes) ----

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // 3 bytes per pixel
};

uint32_t Be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }

bool DecodePng(const std::string& file, Image* img, std::string* why) {
  std::ifstream in(file, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* d = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < 8 || data.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) {
    *why = "not a PNG";
    return false;
  }
  size_t pos = 8;
  int bit_depth = 0, color_type = 0, interlace = 0;
  std::string idat;
  while (pos + 12 <= data.size()) {
    const uint32_t len = Be32(d + pos);
    const std::string type = data.substr(pos + 4, 4);
    if (pos + 12 + len > data.size()) break;
    const uint8_t* body = d + pos + 8;
    if (type == "IHDR") {
      img->width = Be32(body);
      img->height = Be32(body + 4);
      bit_depth = body[8];
      color_type = body[9];
      interlace = body[12];
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(body), len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + len;
  }
  if (bit_depth != 8 || (color_type != 2 && color_type != 6) || interlace != 0) {
    *why = "unsupported PNG layout";
    return false;
  }
  const size_t bpp = color_type == 6 ? 4 : 3;
  const size_t stride = img->width * bpp;
  std::vector<uint8_t> raw((stride + 1) * img->height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK ||
      raw_len != raw.size()) {
    *why = "bad IDAT stream";
    return false;
  }
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  img->rgb.resize(static_cast<size_t>(img->width) * img->height * 3);
  for (uint32_t y = 0; y < img->height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* src = &raw[y * (stride + 1) + 1];
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= bpp ? cur[x - bpp] : 0, b = prev[x], c = x >= bpp ? prev[x - bpp] : 0;
      int v = src[x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default:
          *why = "bad filter";
          return false;
      }
      cur[x] = static_cast<uint8_t>(v);
    }
    for (uint32_t x = 0; x < img->width; ++x) {
      for (int k = 0; k < 3; ++k) img->rgb[(static_cast<size_t>(y) * img->width + x) * 3 + k] = cur[x * bpp + k];
    }
    std::swap(prev, cur);
  }
  return true;
}

// ---- Test data ----

ReportData SampleData() {
  ReportData d;
  d.title = "Investigation <b>42</b> & co";
  d.generated_at = "2026-11-27T10:00:00Z";
  d.accounts = {"4242"};
  ScanEvidence s;
  s.dir = "scan-out";
  s.documents_scanned = 100000;
  s.bytes_scanned = 123456789;
  s.documents_flagged = 40;
  s.threshold = 1e-6;
  s.files = {"corpus/a.jsonl.zst"};
  for (int i = 0; i < 40; ++i) {
    ScanRow r;
    r.doc_id = "doc-" + std::to_string(i);
    r.file = "corpus/a.jsonl.zst";
    r.record = static_cast<uint64_t>(i);
    r.tokens_scored = 150 + i;
    r.log10_p = -6.5 - i * 0.7;
    r.account = i % 4 == 0 ? "" : "4242";
    s.rows.push_back(r);
  }
  s.corpus.push_back(CorpusAccount{"4242", 30, 5000, -212.3});
  SampleDocument doc;
  doc.doc_id = "doc-<7>";
  doc.text = "Intro text. <script>alert('x')</script> The marked part starts here and goes on & on. Tail.";
  doc.log10_p = -21.5;
  doc.account = "4242";
  doc.spans.push_back(Span{12, 70, -9.1});
  s.samples.push_back(doc);
  d.scan = s;
  ProbeEvidence p;
  p.file = "probe-open.json";
  p.result.mode = "open";
  p.result.alpha = 1e-5;
  p.result.log10_p_value = -14.2;
  p.result.p_value = std::pow(10.0, -14.2);
  p.result.tuples_scored = 1800;
  p.result.tokens_examined = 4000;
  p.result.verdict = probe::Verdict::kRadioactive;
  p.result.scheme = "gumbel:h=4";
  p.result.key_version = 1;
  for (int k = 1; k <= 20; ++k) p.result.curve.push_back(probe::CurvePoint{k * 200, -0.71 * k});
  p.result.account = probe::AccountFinding{4242, 1e-6, -6.0, 900, probe::Verdict::kRadioactive};
  d.probes.push_back(p);
  LedgerEvidence l;
  l.url = "sqlite:/tmp/ledger.db";
  l.log_verified = true;
  l.public_key_pinned = true;
  l.audit_entries = 3;
  l.checkpoints = 3;
  AccountLedger a;
  a.id = "4242";
  a.name = "Acme <Harvest> Ltd";
  a.state = "suspended";
  a.state_reason = "distillation signals";
  a.created_at_ms = 1790000000000;
  for (int day = 0; day < 30; ++day) {
    UsageDay u;
    char buf[16];
    std::snprintf(buf, sizeof(buf), "2026-10-%02d", day + 1);
    u.day = buf;
    u.requests = 10 + day * 5;
    u.prompt_tokens = 1000 + day * 300;
    u.completion_tokens = 5000 + day * day * 100;
    a.usage.push_back(u);
  }
  AuditProof e;
  e.index = 2;
  e.body = R"({"action":"account.suspended","actor":"cli:alice","index":2,"reason":"<script>x</script>","target":"4242","time_ms":1792000000000})";
  e.action = "account.suspended";
  e.actor = "cli:alice";
  e.reason = "<script>x</script>";
  e.time_ms = 1792000000000;
  e.tree_size = 3;
  e.root_hex = std::string(64, 'a');
  e.path = {std::string(64, 'b'), std::string(64, 'c')};
  e.verified = true;
  a.audit.push_back(e);
  l.accounts.push_back(a);
  d.ledger = l;
  return d;
}

TEST(ReportHtml, EscapesEverythingFromTheData) {
  const std::string html = RenderReportHtml(SampleData());
  std::string lower = html;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_EQ(lower.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("Investigation &lt;b&gt;42&lt;/b&gt; &amp; co"), std::string::npos);
  EXPECT_NE(html.find("Acme &lt;Harvest&gt; Ltd"), std::string::npos);
  EXPECT_NE(html.find("doc-&lt;7&gt;"), std::string::npos);
  // The marked span is highlighted, and the escaped script sits inside it.
  const size_t mark = html.find("<mark");
  ASSERT_NE(mark, std::string::npos);
  EXPECT_LT(mark, html.find("&lt;script&gt;alert"));
  EXPECT_EQ(HtmlEscape("a<b>&\"'\x01"), "a&lt;b&gt;&amp;&quot;&#39;&#xFFFD;");
}

TEST(ReportHtml, SelfContained) {
  const std::string html = RenderReportHtml(SampleData());
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  const std::regex external(R"((src|href)\s*=|<link|<script|@import|url\()", std::regex::icase);
  EXPECT_FALSE(std::regex_search(html, external));
  EXPECT_NE(html.find("@media print"), std::string::npos);
  // One chart per kind: histogram, probe curve, ledger timeline.
  size_t svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 3u);
  EXPECT_NE(html.find("5.0 &times; 10<sup>-213</sup>"), std::string::npos) << "corpus pooled p 10^-212.3";
}

TEST(ReportHtml, EmptyDataStillRenders) {
  ReportData d;
  const std::string html = RenderReportHtml(d);
  EXPECT_NE(html.find("No evidence was given"), std::string::npos);
  EXPECT_NE(html.find("</html>"), std::string::npos);
}

// A real SQLite ledger with usage and signed audit entries: every inclusion proof verifies;
// altering an entry makes the report say so.
TEST(ReportLedger, ProofsVerifiedAndTamperingShown) {
  TempDir tmp;
  const std::string keyring_path = tmp.path() + "/keyring";
  {
    auto text = ReadFile(std::string(TM_SOURCE_DIR) + "/tests/data/cli/test.keyring", 1 << 16);
    ASSERT_TRUE(text.ok());
    ASSERT_TRUE(WriteFileAtomic(keyring_path, *text, 0600).ok());
  }
  auto ring = watermark::Keyring::Load(keyring_path);
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  auto secrets = policy::ServerSecretsFromKeyring(*ring);
  ASSERT_TRUE(secrets.ok());
  auto signer = ledger::AuditSigner::FromSeed(secrets->audit_signing_seed.span());
  ASSERT_TRUE(signer.ok());
  const std::string db = tmp.path() + "/ledger.db";
  const std::string url = "sqlite:" + db;
  {
    auto store = ledger::OpenLedgerStore(url);
    ASSERT_TRUE(store.ok()) << store.status().message();
    ledger::AccountRecord acct;
    acct.name = "harvester <inc>";
    acct.state = "active";
    acct.created_at_ms = 1790000000000;
    auto id = (*store)->CreateAccount(acct);
    ASSERT_TRUE(id.ok());
    ledger::AccountRecord other;
    other.name = "bystander";
    other.state = "active";
    auto id2 = (*store)->CreateAccount(other);
    ASSERT_TRUE(id2.ok());
    std::vector<ledger::UsageRecord> usage;
    for (int i = 0; i < 50; ++i) {
      ledger::UsageRecord u;
      u.request_id = "req-" + std::to_string(i);
      u.account_id = *id;
      u.prompt_tokens = 100;
      u.completion_tokens = 300 + i;
      u.started_at_ms = u.finished_at_ms = 1790000000000 + int64_t{i} * 6 * 3600 * 1000;
      usage.push_back(u);
    }
    ASSERT_TRUE((*store)->InsertUsage(usage).ok());
    ledger::AuditLog log(store->get(), signer->get());
    for (const auto& [action, target] : std::vector<std::pair<std::string, std::string>>{
             {"account.create", *id}, {"account.create", *id2}, {"account.suspended", *id}, {"account.reinstated", *id2}}) {
      ledger::AuditEvent ev;
      ev.actor = "cli:test";
      ev.action = action;
      ev.target = target;
      ev.reason = "test <reason>";
      ev.time_ms = 1790000000000 + 86400000;
      ASSERT_TRUE(log.Append(ev).ok());
    }
    auto ledger_ev = LoadLedgerEvidence(url, keyring_path, {*id});
    ASSERT_TRUE(ledger_ev.ok()) << ledger_ev.status().message();
    EXPECT_TRUE(ledger_ev->log_verified);
    EXPECT_TRUE(ledger_ev->public_key_pinned);
    ASSERT_EQ(ledger_ev->accounts.size(), 1u);
    const AccountLedger& a = ledger_ev->accounts[0];
    EXPECT_EQ(a.name, "harvester <inc>");
    ASSERT_EQ(a.audit.size(), 2u);  // its create and its suspension, not the other account's
    for (const AuditProof& p : a.audit) {
      EXPECT_TRUE(p.verified) << p.body;
      EXPECT_EQ(p.tree_size, 4u);
      EXPECT_FALSE(p.path.empty());
    }
    int64_t total = 0;
    for (const UsageDay& d : a.usage) total += d.completion_tokens;
    EXPECT_EQ(total, 50 * 300 + 49 * 50 / 2);
    EXPECT_EQ(a.usage.size(), 13u);  // 50 requests, 6 hours apart
    ReportData data;
    data.accounts = {*id};
    data.ledger = *ledger_ev;
    const std::string html = RenderReportHtml(data);
    EXPECT_NE(html.find("harvester &lt;inc&gt;"), std::string::npos);
    EXPECT_EQ(html.find("NOT verified"), std::string::npos);
    EXPECT_NE(html.find("account.suspended"), std::string::npos);
  }
  // Tamper with the suspension entry behind the store's back.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE audit_log SET body = replace(body, 'suspended', 'unsuspended') WHERE idx = 2",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto tampered = LoadLedgerEvidence(url, keyring_path, {"1"});
  ASSERT_TRUE(tampered.ok());
  EXPECT_FALSE(tampered->log_verified);
  EXPECT_FALSE(tampered->problems.empty());
  ReportData data;
  data.ledger = *tampered;
  const std::string html = RenderReportHtml(data);
  EXPECT_NE(html.find("FAILED"), std::string::npos);
  EXPECT_NE(html.find("NOT verified"), std::string::npos);
}

// A scan directory in the documented format (docs/formats/scan.md) with its corpus file: the
// sample texts are read back and their spans highlighted, escaped.
TEST(ReportScan, LoadsRowsAndSamples) {
  TempDir tmp;
  const std::string corpus = tmp.path() + "/corpus.jsonl";
  WriteText(corpus,
            "{\"id\":\"a\",\"text\":\"nothing here\"}\n"
            "{\"id\":\"b\",\"text\":\"<script>alert(1)</script> watermarked words follow\"}\n");
  WriteText(tmp.path() + "/summary.json",
            "{\"format\":\"tracemark-scan-summary/1\",\"job\":{\"files\":[\"" + corpus +
                "\"],\"format\":\"auto\",\"whole_file\":false,\"field\":\"text\",\"all_roles\":false,\"threshold\":1e-06},"
                "\"documents_scanned\":2,\"bytes_scanned\":90,\"tokens_scored\":30,\"documents_flagged\":1,"
                "\"corpus\":{\"pooled\":true,\"accounts\":[{\"account\":\"7\",\"key_version\":1,\"documents\":1,"
                "\"tuples\":20,\"log10_p_value\":-9.5,\"p_value\":3e-10}]}}");
  WriteText(tmp.path() + "/results.jsonl",
            "{\"doc_id\":\"b\",\"file\":\"" + corpus +
                "\",\"file_index\":0,\"record\":1,\"line\":2,\"offset\":34,\"tokens_scored\":20,\"p_value\":1e-9,"
                "\"log10_p_value\":-9.0,\"account\":\"7\",\"account_p_value\":1e-7,\"key_version\":1,\"scheme\":\"gumbel\","
                "\"spans\":[{\"token_begin\":3,\"token_end\":8,\"byte_begin\":26,\"byte_end\":43,\"log10_p\":-7.0}]}\n");
  auto scan = LoadScanEvidence(tmp.path(), {});
  ASSERT_TRUE(scan.ok()) << scan.status().message();
  EXPECT_EQ(scan->documents_scanned, 2);
  ASSERT_EQ(scan->rows.size(), 1u);
  ASSERT_EQ(scan->samples.size(), 1u);
  EXPECT_EQ(scan->samples[0].text.substr(0, 8), "<script>");
  ReportData data;
  data.scan = *scan;
  const std::string html = RenderReportHtml(data);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; <mark"), std::string::npos);
  EXPECT_NE(html.find(">watermarked words</mark>"), std::string::npos);
  EXPECT_FALSE(LoadScanEvidence(tmp.path() + "/missing", {}).ok());
}

// Renders the report in headless Chromium and checks the screenshot is not blank.
TEST(ReportChromium, ScreenshotIsNotBlank) {
  std::string browser;
  for (const char* b : {"chromium", "chromium-browser", "google-chrome"}) {
    if (std::system((std::string("command -v ") + b + " >/dev/null 2>&1").c_str()) == 0) {
      browser = b;
      break;
    }
  }
  if (browser.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it)";
  TempDir tmp;
  const std::string html_path = tmp.path() + "/report.html";
  const std::string png = tmp.path() + "/shot.png";
  WriteText(html_path, RenderReportHtml(SampleData()));
  const std::string cmd = browser +
                          " --headless --no-sandbox --disable-gpu --disable-background-networking"
                          " --disable-dev-shm-usage --hide-scrollbars --user-data-dir=" + tmp.path() + "/profile" +
                          " --screenshot=" + png + " --window-size=1280,2000 file://" + html_path + " >" +
                          tmp.path() + "/chromium.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Image img;
  std::string why;
  ASSERT_TRUE(DecodePng(png, &img, &why)) << why;
  EXPECT_EQ(img.width, 1280u);
  EXPECT_EQ(img.height, 2000u);
  std::set<uint32_t> colors;
  size_t non_white = 0;
  const size_t pixels = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* p = &img.rgb[i * 3];
    colors.insert((uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]);
    if (p[0] < 240 || p[1] < 240 || p[2] < 240) ++non_white;
  }
  const double ink = static_cast<double>(non_white) / static_cast<double>(pixels);
  std::printf("screenshot: %zu distinct colors, %.2f%% non-white pixels\n", colors.size(), 100 * ink);
  if (const char* keep = std::getenv("TM_REPORT_SCREENSHOT")) fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
  EXPECT_GT(colors.size(), 50u);  // text antialiasing, charts, highlights
  EXPECT_GT(ink, 0.03);
  EXPECT_LT(ink, 0.9);
}

}  // namespace
}  // namespace tracemark::report
