// The protocol between OpenEmd (emd_reader.cc) and scisearch-hdf5-worker
// (hdf5_worker_main.cc). Internal to the formats module.
//
// The worker talks on file descriptor kWorkerSocketFd, one end of a Unix stream
// socket pair. Every message is a frame: the header's byte count and the payload's
// byte count (two uint64 in host byte order: both ends run on one machine), the
// header (a JSON object encoded as MessagePack: a third of the cost of JSON text for
// the large metadata trees of an open), then the payload (raw bytes, possibly none).
//
//   worker, at start:  {"hello": "scisearch-hdf5-worker", "protocol": kWorkerProtocol}
//   open:  {"op": "open"} + payload: the file's path (raw bytes)
//          -> {"ok": true, "dataset": DatasetToJson(...)}
//   read:  {"op": "read", "signal": i, "slab": {"start": [...], "count": [...], "step": [...]}}
//          + payload: the path
//          -> {"ok": true, "dtype": "uint16", "shape": [...], "bytes": n} + payload: n bytes
//   any failure: {"ok": false, "code": int(ErrorCode), "message": "..."}
//
// One request at a time; the worker exits when the socket closes.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>

namespace scisearch::formats {

inline constexpr int kWorkerSocketFd = 3;
inline constexpr int kWorkerProtocol = 2;
inline constexpr uint64_t kMaxWorkerHeaderBytes = uint64_t(1) << 30;
inline constexpr uint64_t kMaxWorkerRequestPayload = uint64_t(1) << 20;  // a path

// Sends one frame (its two sizes, `header`, then `payload`) on the stream socket `fd`
// with as few system calls as the socket allows: one, unless the frame is larger than
// its buffer. Three sends would wake the reader up to three times a frame, and waking
// another process is what a small request costs most. False when the peer is gone
// (MSG_NOSIGNAL: no SIGPIPE) or on any other error. Blocks until all is sent.
inline bool SendWorkerFrame(int fd, const void* header, uint64_t header_size, const void* payload,
                            uint64_t payload_size) {
  const uint64_t sizes[2] = {header_size, payload_size};
  iovec parts[3] = {{const_cast<uint64_t*>(sizes), sizeof(sizes)},
                    {const_cast<void*>(header), header_size},
                    {const_cast<void*>(payload), payload_size}};
  iovec* next = parts;
  int left = 3;
  while (left > 0) {
    if (next->iov_len == 0) {
      ++next;
      --left;
      continue;
    }
    msghdr message{};
    message.msg_iov = next;
    message.msg_iovlen = size_t(left);
    const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    size_t done = size_t(sent);
    while (left > 0 && done >= next->iov_len) {
      done -= next->iov_len;
      ++next;
      --left;
    }
    if (left > 0) {
      next->iov_base = static_cast<char*>(next->iov_base) + done;
      next->iov_len -= done;
    }
  }
  return true;
}

}  // namespace scisearch::formats
