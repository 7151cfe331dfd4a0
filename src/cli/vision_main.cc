// scisearch-vision: the only executable that links libtorch. `scisearch vision ...` parses
// the command line and replaces itself with this program, handing over the parsed options
// as one JSON argument (see cli/vision_command.h).
#include <cstring>

#include "cli/search_commands.h"
#include "cli/vision_command.h"

int main(int argc, char** argv) {
  using namespace scisearch;
  if (argc != 3 || std::strcmp(argv[1], "--command") != 0) {
    return cli::Fail(
        Status::InvalidArgument("scisearch-vision is started by `scisearch vision ...`; run that"),
        2);
  }
  Result<cli::VisionCommand> command = cli::VisionCommandFromJson(argv[2]);
  if (!command.ok()) return cli::Fail(command.status(), 2);
  return cli::RunVision(*command);
}
