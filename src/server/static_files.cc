// The web UI's static files: every GET path that is not the API maps to a file
// inside the web root, and to nothing outside it.
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string_view>

#include "formats/text.h"
#include "server/internal.h"

namespace scisearch::server::internal {
namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxStaticFileBytes = 16 << 20;

struct FileType {
  std::string_view extension;
  const char* content_type;
  const char* cache_control;
};

// Pages, scripts and styles have no version in their names: the browser asks again
// each time (a 304 when unchanged, by ETag), so a new release is seen at once.
constexpr FileType kFileTypes[] = {
    {".html", "text/html; charset=utf-8", "no-cache"},
    {".js", "text/javascript; charset=utf-8", "no-cache"},
    {".mjs", "text/javascript; charset=utf-8", "no-cache"},
    {".css", "text/css; charset=utf-8", "no-cache"},
    {".json", "application/json", "no-cache"},
    {".svg", "image/svg+xml", "public, max-age=86400"},
    {".png", "image/png", "public, max-age=86400"},
    {".jpg", "image/jpeg", "public, max-age=86400"},
    {".ico", "image/x-icon", "public, max-age=86400"},
    {".woff2", "font/woff2", "public, max-age=86400"},
    {".txt", "text/plain; charset=utf-8", "no-cache"},
};

// The relative path a URL path names inside the web root, or "" when it names
// nothing there: a path with "..", ".", a hidden name, a backslash or a NUL
// (httplib has already decoded %2e%2e%2f and %00 into them).
std::string SafeRelativePath(const std::string& url_path) {
  if (url_path.empty() || url_path[0] != '/') return "";
  std::string relative = url_path == "/" ? "index.html" : url_path.substr(1);
  if (relative.find('\0') != std::string::npos || relative.find('\\') != std::string::npos ||
      !formats::IsValidUtf8(relative)) {
    return "";
  }
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    const std::string_view part(relative.data() + start, end - start);
    if (part.empty() || part[0] == '.') return "";  // "", ".", "..", ".git"
    start = end + 1;
  }
  return relative;
}

// True when `path` lies inside `root` (both canonical).
bool Inside(const fs::path& path, const fs::path& root) {
  auto [root_end, path_end] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

void ServeFile(const fs::path& root, const httplib::Request& req, httplib::Response& res) {
  const std::string relative = SafeRelativePath(req.path);
  if (root.empty() || relative.empty()) return SendError(res, 404, "not found");
  std::error_code ec;
  // Symbolic links are followed, then the result must still lie inside the root.
  const fs::path file = fs::canonical(root / relative, ec);
  if (ec || !Inside(file, root)) return SendError(res, 404, "not found");
  struct stat info;
  if (::stat(file.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return SendError(res, 404, "not found");
  }
  if (static_cast<uintmax_t>(info.st_size) > kMaxStaticFileBytes) {
    return SendError(res, 404, "not found");
  }
  const FileType* type = nullptr;
  const std::string extension = formats::AsciiLower(file.extension().string());
  for (const FileType& t : kFileTypes) {
    if (t.extension == extension) type = &t;
  }
  const std::string etag = "\"" + std::to_string(info.st_size) + "-" +
                           std::to_string(info.st_mtim.tv_sec) + "." +
                           std::to_string(info.st_mtim.tv_nsec) + "\"";
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", type ? type->cache_control : "no-cache");
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in) return SendError(res, 404, "not found");
  res.set_content(content.str(), type ? type->content_type : "application/octet-stream");
}

}  // namespace

void RegisterStaticFiles(httplib::Server& http, const fs::path& web_root) {
  std::error_code ec;
  fs::path root = web_root.empty() ? fs::path() : fs::canonical(web_root, ec);
  if (ec) root.clear();
  http.Get(".*", [root](const httplib::Request& req, httplib::Response& res) {
    ServeFile(root, req, res);
  });
}

}  // namespace scisearch::server::internal
