// Subcommands of the `tracemark` binary. Each Add*Command registers its options on `app` and a
// callback; the callback stores the exit code in *exit_code (0 ok, 1 operation failed, 2 usage or
// input error, per docs/cli.md). Single-threaded start-up code.
#pragma once

#include <CLI/CLI.hpp>

#include "tracemark/base/status.h"

namespace tracemark::cli {

// Prints "tracemark <command>: <message>" as one line on stderr and returns the exit code:
// 2 for invalid input / not found / permission problems, 1 for everything else.
int ReportError(std::string_view command, const Status& status);

// Registration functions; add one line per subcommand in main.cc.
// (Each lives in its own <name>_cmd.cc.)
void AddGenerateCommand(CLI::App& app, int* exit_code);
void AddTokenizeCommand(CLI::App& app, int* exit_code);
void AddAccountsCommand(CLI::App& app, int* exit_code);
void AddAuditCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddKeyringCommand(CLI::App& app, int* exit_code);
void AddDetectCommand(CLI::App& app, int* exit_code);
void AddScanCommand(CLI::App& app, int* exit_code);
void AddProbeCommand(CLI::App& app, int* exit_code);
void AddReportCommand(CLI::App& app, int* exit_code);
// `redteam` group (redteam_cmd.cc); its subcommands register on the group's App.
void AddRedteamCommand(CLI::App& app, int* exit_code);
void AddReplayCommand(CLI::App& app, int* exit_code);
// `redteam train-student` (train_student_cmd.cc), registered on the redteam group.
void AddTrainStudentCommand(CLI::App& group, int* exit_code);

}  // namespace tracemark::cli
