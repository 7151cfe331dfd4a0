#include "cli/serve_command.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/search_commands.h"
#include "server/server.h"

namespace scisearch::cli {
namespace {

namespace fs = std::filesystem;

// The web UI: the one given, else the installed copy, else the source tree's.
fs::path FindWebRoot(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = self.parent_path().parent_path() / "share" / "scisearch" / "web";
    if (fs::is_regular_file(installed / "index.html", ec)) return installed;
  }
#ifdef SCISEARCH_SOURCE_WEB_ROOT
  if (fs::is_regular_file(fs::path(SCISEARCH_SOURCE_WEB_ROOT) / "index.html", ec)) {
    return SCISEARCH_SOURCE_WEB_ROOT;
  }
#endif
  return {};
}

}  // namespace

int RunServe(const ServeCommand& command) {
  // Signals are taken synchronously by one thread (sigwait), never in a handler:
  // stopping the server is not async-signal-safe. Threads started from here on
  // inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  server::ServerOptions options;
  options.data_dir = command.data_dir;
  options.host = command.host;
  options.port = command.port;
  options.threads = command.threads;
  options.max_body_bytes = command.max_body_bytes;
  options.web_root = FindWebRoot(command.web_root);
  if (!command.web_root.empty() && !fs::is_directory(options.web_root)) {
    return Fail(Status::NotFound(command.web_root + ": no such folder (--web-root)"));
  }
  Result<std::unique_ptr<server::Server>> server = server::Server::Start(options);
  if (!server.ok()) return Fail(server.status());
  spdlog::info("serving {} on http://{}:{}/ ({} threads; web UI: {})", command.data_dir.string(),
               command.host, (*server)->port(), command.threads,
               options.web_root.empty() ? "none, API only" : options.web_root.string());

  std::thread signal_waiter([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("{}: stopping after the requests in progress", strsignal(signal));
    (*server)->Stop();
  });
  Status waited = (*server)->Wait();
  // Wakes the waiter when the server stopped on its own (the signal is blocked,
  // so it only ends sigwait); after a real signal it has returned already.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  if (!waited.ok()) return Fail(waited);
  return 0;
}

}  // namespace scisearch::cli
