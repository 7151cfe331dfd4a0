// HTTP search throughput and latency of the scisearch server under concurrent
// clients, on loopback, bounded in time.
//
//   http_bench --data-dir D [--clients 1,4,16] [--seconds 10] [--threads 16]
//       starts the server (src/server) in this process on a free loopback port;
//   http_bench --url http://127.0.0.1:8080 ...
//       measures a running `scisearch serve`.
//
// The query mix is drawn from the catalog itself: the values of the facets of
// the match-all query (instruments, PIs, tags, modes, years), alone, as filters
// and in pairs, plus a few free-text words, so that it fits any facility. Each
// client sends its next query as soon as the last answer arrived (a closed loop)
// over one keep-alive connection. Prints one line per concurrency: requests, errors,
// throughput, and latency percentiles measured at the client.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "search/search.h"
#include "server/server.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  std::string url;       // a running server, or
  std::string data_dir;  // start one here
  std::vector<int> clients = {1, 4, 16};
  double seconds = 10;
  int threads = 16;
  bool access_log = false;
  // Times a search::UpdateIndex with nothing to apply (the cost of updating the
  // index before every search instead of after every tag change).
  bool update_cost = false;
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "http_bench: %s\nusage: http_bench (--data-dir D | --url http://HOST:PORT) "
               "[--clients 1,4,16] [--seconds 10] [--threads 16] [--access-log] [--update-cost]\n",
               why);
  return 2;
}

std::string Encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// The query mix: URLs of /api/v1/search built from the catalog's own facet values.
std::vector<std::string> QueryMix(httplib::Client& client) {
  std::vector<std::string> mix;
  auto res = client.Get("/api/v1/search?q=&limit=1");
  if (!res || res->status != 200) return mix;
  const json all = json::parse(res->body, nullptr, false);
  if (all.is_discarded()) return mix;
  const std::string base = "/api/v1/search?limit=10&q=";
  std::vector<std::string> words = {"image", "nanoparticles", "atomic resolution",
                                    "gold",  "diffraction",   "spectrum"};
  for (const char* facet : {"tag", "instrument", "mode", "pi"}) {
    if (!all["facets"].contains(facet)) continue;
    int taken = 0;
    for (const json& v : all["facets"][facet]) {
      if (taken++ == 6) break;
      const std::string value = v["value"];
      words.push_back(value);
      mix.push_back(base + "&f=" + Encode(std::string(facet) + ":" + value));
    }
  }
  for (size_t i = 0; i < words.size(); ++i) {
    mix.push_back(base + Encode(words[i]));
    mix.push_back(base + Encode(words[i] + " " + words[(i * 7 + 3) % words.size()]));
  }
  if (all["facets"].contains("year")) {
    for (const json& v : all["facets"]["year"]) {
      mix.push_back(base + "image&f=" + Encode("year:" + v["value"].get<std::string>()));
    }
  }
  return mix;
}

struct Round {
  int clients = 0;
  int64_t requests = 0;
  int64_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
};

Round RunRound(const std::string& host, int port, const std::vector<std::string>& mix, int clients,
               double seconds) {
  Round round;
  round.clients = clients;
  std::vector<std::vector<double>> per_client(clients);
  std::atomic<int64_t> errors{0};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(host, port);
      client.set_keep_alive(true);
      client.set_read_timeout(std::chrono::seconds(30));
      size_t next = static_cast<size_t>(c) * 13;
      while (Clock::now() < end) {
        const std::string& url = mix[next++ % mix.size()];
        const Clock::time_point sent = Clock::now();
        auto res = client.Get(url);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        if (!res || res->status != 200) {
          ++errors;
          continue;
        }
        per_client[c].push_back(ms);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  round.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& v : per_client) {
    round.latencies_ms.insert(round.latencies_ms.end(), v.begin(), v.end());
  }
  std::sort(round.latencies_ms.begin(), round.latencies_ms.end());
  round.requests = static_cast<int64_t>(round.latencies_ms.size());
  round.errors = errors.load();
  return round;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * double(sorted.size())));
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--url") {
      options.url = value();
    } else if (arg == "--data-dir") {
      options.data_dir = value();
    } else if (arg == "--seconds") {
      options.seconds = std::atof(value().c_str());
    } else if (arg == "--threads") {
      options.threads = std::atoi(value().c_str());
    } else if (arg == "--access-log") {
      options.access_log = true;
    } else if (arg == "--update-cost") {
      options.update_cost = true;
    } else if (arg == "--clients") {
      options.clients.clear();
      const std::string list = value();
      for (size_t at = 0; at < list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        const int n = std::atoi(list.substr(at, comma - at).c_str());
        if (n < 1 || n > 1024) return Usage("--clients: numbers 1-1024, comma-separated");
        options.clients.push_back(n);
        at = comma + 1;
      }
    } else {
      return Usage(("unknown argument " + arg).c_str());
    }
  }
  if (options.url.empty() == options.data_dir.empty()) {
    return Usage("give one of --data-dir and --url");
  }
  if (!(options.seconds > 0 && options.seconds <= 3600)) return Usage("--seconds: 0 to 3600");

  std::string host = "127.0.0.1";
  int port = 0;
  std::unique_ptr<scisearch::server::Server> server;
  if (!options.data_dir.empty()) {
    if (!options.access_log) spdlog::set_level(spdlog::level::warn);
    if (options.update_cost) {
      auto catalog = scisearch::catalog::Catalog::Open(options.data_dir);
      if (!catalog.ok()) {
        std::fprintf(stderr, "http_bench: %s\n", catalog.status().message().c_str());
        return 1;
      }
      (void)scisearch::search::UpdateIndex(**catalog);  // the first applies what is pending
      constexpr int kTimes = 20;
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < kTimes; ++i) (void)scisearch::search::UpdateIndex(**catalog);
      std::printf("UpdateIndex with nothing to apply: %.2f ms\n",
                  std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / kTimes);
    }
    scisearch::server::ServerOptions server_options;
    server_options.data_dir = options.data_dir;
    server_options.port = 0;
    server_options.threads = options.threads;
    auto started = scisearch::server::Server::Start(server_options);
    if (!started.ok()) {
      std::fprintf(stderr, "http_bench: %s\n", started.status().message().c_str());
      return 1;
    }
    server = std::move(*started);
    port = server->port();
  } else {
    const std::string prefix = "http://";
    const size_t colon = options.url.rfind(':');
    if (options.url.rfind(prefix, 0) != 0 || colon < prefix.size()) {
      return Usage("--url: http://HOST:PORT");
    }
    host = options.url.substr(prefix.size(), colon - prefix.size());
    port = std::atoi(options.url.substr(colon + 1).c_str());
  }

  httplib::Client probe(host, port);
  const std::vector<std::string> mix = QueryMix(probe);
  if (mix.empty()) {
    std::fprintf(stderr, "http_bench: no answer from the server's search API\n");
    return 1;
  }
  auto health = probe.Get("/api/v1/health");
  std::printf("http_bench: %s, %zu queries in the mix, %.0f s per round%s\n",
              health ? health->body.c_str() : "(no health)", mix.size(), options.seconds,
              server
                  ? (", " + std::to_string(options.threads) + " server threads in process").c_str()
                  : "");
  // A short warm-up: the first queries read the index from disk.
  RunRound(host, port, mix, 1, std::min(2.0, options.seconds));
  std::printf("%8s %9s %7s %9s %8s %8s %8s %8s\n", "clients", "requests", "errors", "req/s",
              "p50 ms", "p90 ms", "p99 ms", "max ms");
  for (int clients : options.clients) {
    const Round r = RunRound(host, port, mix, clients, options.seconds);
    std::printf("%8d %9lld %7lld %9.1f %8.2f %8.2f %8.2f %8.2f\n", r.clients,
                static_cast<long long>(r.requests), static_cast<long long>(r.errors),
                double(r.requests) / r.seconds, Percentile(r.latencies_ms, 0.50),
                Percentile(r.latencies_ms, 0.90), Percentile(r.latencies_ms, 0.99),
                r.latencies_ms.empty() ? 0.0 : r.latencies_ms.back());
    std::fflush(stdout);
  }
  if (server) {
    server->Stop();
    (void)server->Wait();
  }
  return 0;
}
