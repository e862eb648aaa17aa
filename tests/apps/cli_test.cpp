// The command's shared behaviour: help, version, exit codes, progress, colour.
#include <gtest/gtest.h>

#include "command_runner.hpp"

using spindle_test::run_spindle;
using spindle_test::TemporaryFolder;

TEST(Command, HelpListsEverySubcommandAndExitsZero) {
  const auto result = run_spindle({"--help"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  for (const char* name : {"grep", "replace", "fetch", "--json", "--progress", "--no-progress"})
    EXPECT_NE(result.out.find(name), std::string::npos) << name << "\n" << result.out;
}

TEST(Command, SubcommandHelpExitsZero) {
  for (const char* name : {"grep", "replace", "fetch"}) {
    const auto result = run_spindle({name, "--help"});
    EXPECT_EQ(result.exit_code, 0) << name;
    EXPECT_NE(result.out.find(std::string("spindle ") + name), std::string::npos) << result.out;
  }
}

TEST(Command, VersionPrintsTheProjectVersion) {
  const auto result = run_spindle({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "spindle " SPINDLE_VERSION "\n");
}

TEST(Command, NoSubcommandIsBadUsage) {
  const auto result = run_spindle({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("subcommand"), std::string::npos) << result.err;
}

TEST(Command, UnknownSubcommandIsNamed) {
  const auto result = run_spindle({"frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown subcommand 'frobnicate'"), std::string::npos) << result.err;
}

TEST(Command, UnknownOptionIsBadUsage) {
  const auto result = run_spindle({"grep", "--frobnicate", "word", "file"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--frobnicate"), std::string::npos) << result.err;
}

TEST(Command, OptionValueOutOfRangeIsBadUsage) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "word");
  const auto result = run_spindle({"grep", "-j", "0", "word", file.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("-j"), std::string::npos) << result.err;
}

TEST(Command, NoProgressBarWhenStderrIsNotATerminal) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "word word");
  const auto result = run_spindle({"grep", "word", file.string()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.err, "");
}

TEST(Command, ProgressForcedDrawsABarOnStderrOnly) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "word word");
  const auto result = run_spindle({"--progress", "grep", "word", file.string()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.err.find("grep ["), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "2 " + file.string() + "\n2 total\n");
}

TEST(Command, ProgressBarByDefaultOnATerminalAndNoProgressTurnsItOff) {
  TemporaryFolder folder;
  const auto file = folder.write("a.txt", "word");
  const auto on_terminal = run_spindle({"grep", "word", file.string()}, {.stderr_terminal = true});
  EXPECT_NE(on_terminal.err.find("grep ["), std::string::npos) << on_terminal.err;
  const auto turned_off =
      run_spindle({"grep", "--no-progress", "word", file.string()}, {.stderr_terminal = true});
  EXPECT_EQ(turned_off.err.find("grep ["), std::string::npos) << turned_off.err;
}

TEST(Command, ErrorsAreColouredOnATerminalUnlessNoColor) {
  TemporaryFolder folder;
  const auto missing = (folder / "missing.txt").string();
  const auto coloured = run_spindle({"grep", "--no-progress", "word", missing},
                                    {.unset = {"NO_COLOR"}, .stderr_terminal = true});
  EXPECT_EQ(coloured.exit_code, 1);
  EXPECT_NE(coloured.err.find("\x1b[31merror"), std::string::npos) << coloured.err;
  const auto plain = run_spindle({"grep", "--no-progress", "word", missing},
                                 {.environment = {{"NO_COLOR", "1"}}, .stderr_terminal = true});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_EQ(plain.err.find("\x1b["), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("error: " + missing), std::string::npos) << plain.err;
}

TEST(Command, NoColourWhenStderrIsNotATerminal) {
  TemporaryFolder folder;
  const auto result =
      run_spindle({"grep", "word", (folder / "missing").string()}, {.unset = {"NO_COLOR"}});
  EXPECT_EQ(result.err.find("\x1b["), std::string::npos) << result.err;
}
