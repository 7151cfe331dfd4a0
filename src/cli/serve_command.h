// `scisearch serve`: the HTTP server (src/server) in the foreground until SIGINT or
// SIGTERM, apart from main.cc so that only main.cc pays for CLI11.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace scisearch::cli {

struct ServeCommand {
  std::filesystem::path data_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 16;
  size_t max_body_bytes = 64 * 1024;
  // The web UI's files; "" = the installed copy, else the source tree's web/.
  std::string web_root;
};

// Serves until SIGINT or SIGTERM, then finishes the requests in progress and
// returns 0; returns 1 (with "scisearch: <reason>" on stderr) when the server cannot
// start. Call from the main thread before any other thread exists: it blocks the
// two signals in every thread and waits for them on a thread of its own.
int RunServe(const ServeCommand& command);

}  // namespace scisearch::cli
