// Entry point of the `tracemark` binary: parses the command line with CLI11 and dispatches.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"

namespace tracemark::cli {

int ReportError(std::string_view command, const Status& status) {
  std::fprintf(stderr, "tracemark %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               status.message().c_str());
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied:
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
  }
}

}  // namespace tracemark::cli

int main(int argc, char** argv) {
  CLI::App app{"tracemark: serve, watermark and trace LLM outputs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tracemark 0.1.0");
  int exit_code = 0;
  // Subcommands (one line each):
  tracemark::cli::AddGenerateCommand(app, &exit_code);
  tracemark::cli::AddTokenizeCommand(app, &exit_code);
  tracemark::cli::AddAccountsCommand(app, &exit_code);
  tracemark::cli::AddAuditCommand(app, &exit_code);
  tracemark::cli::AddServeCommand(app, &exit_code);
  tracemark::cli::AddKeyringCommand(app, &exit_code);
  tracemark::cli::AddDetectCommand(app, &exit_code);
  tracemark::cli::AddScanCommand(app, &exit_code);
  tracemark::cli::AddProbeCommand(app, &exit_code);
  tracemark::cli::AddReportCommand(app, &exit_code);
  tracemark::cli::AddRedteamCommand(app, &exit_code);
  tracemark::cli::AddReplayCommand(app, &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
