// scisearch-vision: the only executable that links libtorch. `scisearch vision ...` parses
// the command line and replaces itself with this program, handing over the parsed options
// as one JSON argument (see cli/vision_command.h).
#include <malloc.h>

#include <cstring>

#include "cli/search_commands.h"
#include "cli/vision_command.h"

int main(int argc, char** argv) {
  using namespace scisearch;
  // Each image allocates and frees planes of a few MB (the texture statistics' filters).
  // glibc would map each from the kernel and hand it back on free, zeroing fresh pages
  // every time: on uhcs3, predict spent 6 of 34 CPU-seconds in the kernel so. Planes up to
  // 64 MB now come from the heap, and up to 256 MB of freed heap is kept for the next image.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  if (argc != 3 || std::strcmp(argv[1], "--command") != 0) {
    return cli::Fail(
        Status::InvalidArgument("scisearch-vision is started by `scisearch vision ...`; run that"),
        2);
  }
  Result<cli::VisionCommand> command = cli::VisionCommandFromJson(argv[2]);
  if (!command.ok()) return cli::Fail(command.status(), 2);
  return cli::RunVision(*command);
}
