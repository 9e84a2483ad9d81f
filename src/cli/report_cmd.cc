// `tracemark report --out report.html [--scan DIR] [--probe FILE.json ...] [--db URL --keyring K]
// [--accounts ID,...] [--title TEXT]`: one self-contained HTML evidence report (docs/report.md).
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tracemark/base/file.h"
#include "tracemark/report/report.h"

namespace tracemark::cli {
namespace {

struct ReportArgs {
  std::string out;
  std::string scan;
  std::vector<std::string> probes;
  std::string db;
  std::string keyring;
  std::vector<std::string> accounts;
  std::string title = "Watermark evidence report";
};

std::string NowUtc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status RunReport(const ReportArgs& a) {
  if (a.scan.empty() && a.probes.empty() && a.db.empty()) {
    return InvalidArgument("nothing to report: give --scan DIR, --probe FILE.json and/or --db URL");
  }
  if (!a.keyring.empty() && a.db.empty()) return InvalidArgument("--keyring is used with --db (to verify the audit log)");
  report::ReportData data;
  data.title = a.title;
  data.generated_at = NowUtc();
  data.accounts = a.accounts;
  if (!a.scan.empty()) {
    TM_ASSIGN_OR_RETURN(report::ScanEvidence scan, report::LoadScanEvidence(a.scan, a.accounts));
    data.scan = std::move(scan);
  }
  for (const std::string& p : a.probes) {
    TM_ASSIGN_OR_RETURN(report::ProbeEvidence pe, report::LoadProbeEvidence(p));
    data.probes.push_back(std::move(pe));
  }
  if (!a.db.empty()) {
    TM_ASSIGN_OR_RETURN(report::LedgerEvidence le, report::LoadLedgerEvidence(a.db, a.keyring, a.accounts));
    data.ledger = std::move(le);
  }
  const std::string html = report::RenderReportHtml(data);
  TM_RETURN_IF_ERROR(WriteFileAtomic(a.out, html));
  std::printf("wrote %s (%zu bytes)\n", a.out.c_str(), html.size());
  if (data.ledger && !data.ledger->log_verified) {
    return Internal("the audit log failed verification (details in the report): " +
                    (data.ledger->problems.empty() ? std::string("unknown problem") : data.ledger->problems.front()));
  }
  return Status::Ok();
}

}  // namespace

void AddReportCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand("report", "Write a self-contained HTML evidence report");
  cmd->add_option("--out", args->out, "Output HTML file")->required();
  cmd->add_option("--scan", args->scan, "Output directory of `tracemark scan`");
  cmd->add_option("--probe", args->probes, "JSON result(s) of `tracemark probe --out`");
  cmd->add_option("--db", args->db, "Ledger URL (sqlite:PATH or postgresql://...) for usage and audit entries");
  cmd->add_option("--keyring", args->keyring, "Keyring: pins the audit log's signing key");
  cmd->add_option("--accounts", args->accounts, "Accounts under investigation (comma-separated)")->delimiter(',');
  cmd->add_option("--title", args->title, "Report title");
  cmd->callback([args, exit_code] {
    const Status s = RunReport(*args);
    *exit_code = s.ok() ? 0 : ReportError("report", s);
  });
}

}  // namespace tracemark::cli
