// The server's life: options, the HTTP server and its worker pool, the session
// pool, the access log, and the handlers of errors that no route answered.
#include "server/server.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <thread>

#include "server/internal.h"

namespace scisearch::server {
namespace internal {

SessionPool::Lease::~Lease() {
  if (session_ == nullptr) return;
  std::lock_guard<std::mutex> lock(pool_->mutex_);
  pool_->idle_.push_back(std::move(session_));
}

Result<SessionPool::Lease> SessionPool::Acquire() {
  std::unique_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      session = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (session != nullptr) {
    // Cheap (Xapian reads the revision of the index's files): every request sees
    // the latest commit, this server's tag updates and other processes' alike.
    Status reopened = session->searcher->Reopen();
    if (reopened.ok()) return Lease(this, std::move(session));
    spdlog::warn("search index handle dropped: {}", reopened.message());
    session.reset();  // reopened below from scratch
  }
  session = std::make_unique<Session>();
  SCISEARCH_ASSIGN_OR_RETURN(session->catalog, catalog::Catalog::Open(data_dir_));
  SCISEARCH_ASSIGN_OR_RETURN(session->searcher, search::Searcher::Open(*session->catalog));
  return Lease(this, std::move(session));
}

Result<search::IndexStats> IndexUpdater::Update() {
  std::lock_guard<std::mutex> lock(mutex_);
  return search::UpdateIndex(*catalog_);
}

void SendJson(httplib::Response& res, int status, const nlohmann::ordered_json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                  "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, {{"error", {{"status", status}, {"message", message}}}});
}

}  // namespace internal

namespace {

using internal::SendError;

// The request's start, carried from the pre-routing to the post-routing handler
// in a response header (httplib 0.11 gives a request no other place for it) and
// replaced by a Server-Timing header before the response is written.
constexpr const char* kStartHeader = "X-Scisearch-Start-Ns";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The message for a status no handler wrote a body for.
std::string DefaultMessage(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    case 416:
      return "range not satisfiable";
    case 431:
      return "too many request headers";
    default:
      return status >= 500 ? "internal server error" : "request failed";
  }
}

constexpr size_t kMaxHeaders = 64;

// `text` with control bytes (newlines included) as \xNN, so that a request's
// decoded path cannot forge or break log lines.
std::string LogSafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text.substr(0, 2000)) {
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02X", c);
      out += hex;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace

class Server::Impl {
 public:
  explicit Impl(const ServerOptions& options) : options_(options), sessions_(options.data_dir) {}

  ~Impl() {
    Stop();
    if (listener_.joinable()) listener_.join();
  }

  Status Start(std::unique_ptr<catalog::Catalog> writer_catalog) {
    updater_ = std::make_unique<internal::IndexUpdater>(std::move(writer_catalog));
    context_.sessions = &sessions_;
    context_.index = updater_.get();
    context_.max_body_bytes = options_.max_body_bytes;
    Configure();
    const int port = options_.port == 0
                         ? http_.bind_to_any_port(options_.host)
                         : (http_.bind_to_port(options_.host, options_.port) ? options_.port : -1);
    if (port <= 0) {
      return Status::IoError("cannot listen on " + options_.host + ":" +
                             std::to_string(options_.port) +
                             " (address in use, or not an address of this machine)");
    }
    port_ = port;
    listener_ = std::thread([this] {
      const bool clean = http_.listen_after_bind();
      std::lock_guard<std::mutex> lock(mutex_);
      listen_failed_ = !clean && !stop_requested_;
      stopped_ = true;
      stopped_changed_.notify_all();
    });
    // Stop() acts only on a running server: wait until it runs.
    while (!http_.is_running()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_) return Status::IoError("the HTTP server stopped while starting");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status::Ok();
  }

  int port() const { return port_; }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_requested_ = true;
    }
    if (http_.is_running()) http_.stop();
  }

  Status Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    stopped_changed_.wait(lock, [this] { return stopped_; });
    if (listen_failed_) return Status::IoError("the HTTP server stopped listening");
    return Status::Ok();
  }

 private:
  void Configure() {
    const int threads = options_.threads;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http_.set_payload_max_length(options_.max_body_bytes);
    http_.set_read_timeout(std::chrono::seconds(10));
    http_.set_write_timeout(std::chrono::seconds(30));
    // httplib gives each connection a worker for as long as it stays open: idle
    // keep-alive connections close soon, and busy ones after 20 requests, so that
    // connections beyond the worker count wait for a worker briefly.
    http_.set_keep_alive_timeout(2);
    http_.set_keep_alive_max_count(20);
    http_.set_tcp_nodelay(true);
    http_.set_default_headers({
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "same-origin"},
        // Scripts only from this server's own files, never inline: an item's text
        // can never run as code, even if a page forgot to escape it.
        {"Content-Security-Policy",
         "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
         "img-src 'self' data: blob:; "
         "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"},
    });
    http_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      res.set_header(kStartHeader, std::to_string(NowNs()));
      if (req.headers.size() > kMaxHeaders) {
        SendError(res, 431,
                  "too many request headers (" + std::to_string(req.headers.size()) + "; at most " +
                      std::to_string(kMaxHeaders) + ")");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http_.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      auto start = res.headers.find(kStartHeader);
      if (start == res.headers.end()) return;
      const int64_t started = std::strtoll(start->second.c_str(), nullptr, 10);
      res.headers.erase(start);
      char timing[48];
      std::snprintf(timing, sizeof(timing), "app;dur=%.2f", double(NowNs() - started) / 1e6);
      res.set_header("Server-Timing", timing);
    });
    // Statuses no handler answered (unknown path or method, a body too large, a bad
    // request line) get a JSON error too; a handler's own error body is kept.
    http_.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          SendError(res, res.status, DefaultMessage(res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    // The handlers return errors as values; this is the last guard (a bug, or memory
    // exhausted), and it says nothing of the server's insides.
    http_.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          spdlog::error("{} {}: uncaught exception: {}", req.method, req.path, what);
          res.headers.erase("EXCEPTION_WHAT");
          SendError(res, 500, "internal server error");
        });
    http_.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::string bytes = res.get_header_value("Content-Length");
      if (bytes.empty()) bytes = std::to_string(res.body.size());
      std::string ms = "-";
      const std::string timing = res.get_header_value("Server-Timing");
      if (const size_t at = timing.find("dur="); at != std::string::npos) {
        ms = timing.substr(at + 4);
      }
      // Paths arrive percent-decoded: escaped, so that no request can forge log lines.
      spdlog::info("{} {} {} {} {} ms", LogSafe(req.method), LogSafe(req.path), res.status, bytes,
                   ms);
    });
    internal::RegisterApi(http_, context_);
    internal::RegisterStaticFiles(http_, options_.web_root);
  }

  ServerOptions options_;
  internal::SessionPool sessions_;
  std::unique_ptr<internal::IndexUpdater> updater_;
  internal::ApiContext context_;
  httplib::Server http_;
  int port_ = 0;
  std::thread listener_;
  std::mutex mutex_;
  std::condition_variable stopped_changed_;
  bool stop_requested_ = false;  // guarded by mutex_
  bool stopped_ = false;         // guarded by mutex_
  bool listen_failed_ = false;   // guarded by mutex_
};

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("server: data_dir is empty");
  if (options.threads < 1 || options.threads > 1024) {
    return Status::InvalidArgument("server: threads must be 1 to 1024, not " +
                                   std::to_string(options.threads));
  }
  if (options.port < 0 || options.port > 65535) {
    return Status::InvalidArgument("server: port must be 0 to 65535, not " +
                                   std::to_string(options.port));
  }
  if (options.max_body_bytes < 1024) {
    return Status::InvalidArgument("server: max_body_bytes must be at least 1024");
  }
  if (!std::filesystem::exists(options.data_dir / "catalog.sqlite")) {
    return Status::NotFound((options.data_dir / "catalog.sqlite").string() +
                            ": no catalog here (run scisearch ingest or add-docs first)");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::unique_ptr<catalog::Catalog> writer,
                             catalog::Catalog::Open(options.data_dir));
  // The index must exist (and be current) before any searcher opens it.
  Result<search::IndexStats> updated = search::UpdateIndex(*writer);
  if (!updated.ok()) {
    if (updated.status().code() != ErrorCode::kUnsupported) return updated.status();
    spdlog::warn("search index not updated at start: {}", updated.status().message());
  } else if (updated->items_indexed + updated->items_removed > 0) {
    spdlog::info("index: {} items indexed, {} removed in {:.1f} s", updated->items_indexed,
                 updated->items_removed, updated->seconds);
  }
  auto impl = std::make_unique<Impl>(options);
  SCISEARCH_RETURN_IF_ERROR(impl->Start(std::move(writer)));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
int Server::port() const { return impl_->port(); }
void Server::Stop() { impl_->Stop(); }
Status Server::Wait() { return impl_->Wait(); }

}  // namespace scisearch::server
