// The server module: scisearch over HTTP. A versioned JSON API (/api/v1, see
// docs/api.md) over the catalog and the search index of one data directory, and
// the static files of the web UI.
//
// This header is the module's whole interface.
//
// Each request runs on one of a fixed number of worker threads, with a catalog
// connection and a searcher of its own (connections are pooled: at most one per
// worker). Writes (tags, the query and click logs) go to the catalog, which is the
// source of truth; after a tag changes the server brings the search index up to
// date before it answers, so the next search sees the change. Another process
// (ingest, link) may write the same data directory meanwhile: each request sees
// the index's latest commit.
//
// Errors are JSON ({"error": {"status": N, "message": "..."}}), never HTML or a
// stack trace; no exception leaves a request handler.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"

namespace scisearch::server {

struct ServerOptions {
  std::filesystem::path data_dir;  // holds catalog.sqlite and the index
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (Server::port() tells which)
  // Worker threads: requests served at once. A keep-alive connection holds its
  // worker while it stays open (up to the keep-alive timeout).
  int threads = 16;
  size_t max_body_bytes = 64 * 1024;  // larger request bodies get 413
  // The web UI's files (index.html, js/, css/); "" serves the API alone.
  std::filesystem::path web_root;
};

class Server {
 public:
  // Opens the catalog of options.data_dir (applying pending migrations), brings the
  // search index up to date, binds host:port and starts serving on background
  // threads. Returns once the server accepts connections. kInvalidArgument for bad
  // options, kIoError when the address cannot be bound, and the catalog's or the
  // index's error when they cannot be opened.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options);

  // Stops (as Stop) and waits for the worker threads.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port the server listens on (the one chosen when options.port was 0).
  int port() const;

  // Stops accepting connections; requests in progress finish. Any thread may call
  // it, any number of times (not from a signal handler: see cli/serve_command.cc).
  void Stop();

  // Blocks until the server has stopped (after Stop, or when listening failed).
  // Returns an error when listening ended by a failure rather than by Stop.
  Status Wait();

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scisearch::server
