// Pieces of the server shared by server.cc, api.cc and static_files.cc. Private to
// src/server.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"
#include "search/search.h"

namespace scisearch::server::internal {

// What one request needs of the data directory: a catalog connection and a
// searcher over it (the searcher refers to the catalog: destroyed first).
struct Session {
  std::unique_ptr<catalog::Catalog> catalog;
  std::unique_ptr<search::Searcher> searcher;
};

// Sessions for the worker threads. Catalog and Searcher are thread-compatible, so
// each request borrows a session of its own and gives it back when done; the pool
// holds at most as many as requests ever ran at once (the worker count).
// Thread-safe.
class SessionPool {
 public:
  explicit SessionPool(std::filesystem::path data_dir) : data_dir_(std::move(data_dir)) {}

  // A borrowed session; returned to the pool on destruction unless discarded.
  class Lease {
   public:
    Lease(SessionPool* pool, std::unique_ptr<Session> session)
        : pool_(pool), session_(std::move(session)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Session& operator*() { return *session_; }
    Session* operator->() { return session_.get(); }
    // Closes the session instead of returning it (its index handle went bad, e.g.
    // after `scisearch reindex` replaced the index folder).
    void Discard() { session_.reset(); }

   private:
    SessionPool* pool_;
    std::unique_ptr<Session> session_;
  };

  // A session whose searcher sees the index's latest commit: a pooled one, or a
  // new one (opening the catalog and the index). Errors of opening are returned.
  Result<Lease> Acquire();

 private:
  std::filesystem::path data_dir_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Session>> idle_;  // guarded by mutex_
};

// The one writer of the search index in this process: brings the index up to date
// after the catalog changed. Thread-safe (serialised).
class IndexUpdater {
 public:
  explicit IndexUpdater(std::unique_ptr<catalog::Catalog> catalog) : catalog_(std::move(catalog)) {}
  // Applies every pending catalog change to the index. Another process holding
  // the index's lock gives kUnsupported: the change is applied by that process's
  // own update or by the next call.
  Result<search::IndexStats> Update();

 private:
  std::mutex mutex_;
  std::unique_ptr<catalog::Catalog> catalog_;  // guarded by mutex_
};

// What the API handlers share.
struct ApiContext {
  SessionPool* sessions = nullptr;
  IndexUpdater* index = nullptr;
  size_t max_body_bytes = 0;
  // Held around every catalog write of this process (query and click logs, tags):
  // writers queue here, woken at once, instead of in SQLite's busy handler, which
  // sleeps in steps of up to 100 ms (seen as p99 spikes with 16 clients searching).
  std::mutex catalog_writes;
};

// Registers every /api/v1 handler on `http`; `context` must outlive it.
void RegisterApi(httplib::Server& http, ApiContext& context);

// Registers the handler of every other GET path: files of `web_root` (index.html
// for /), never a file outside it. `web_root` "" answers 404 to every path.
void RegisterStaticFiles(httplib::Server& http, const std::filesystem::path& web_root);

// Sets `res` to the JSON error {"error": {"status", "message"}}.
void SendError(httplib::Response& res, int status, const std::string& message);

// Sets `res` to `body` (compact JSON, invalid UTF-8 replaced) with `status`.
void SendJson(httplib::Response& res, int status, const nlohmann::ordered_json& body);

}  // namespace scisearch::server::internal
