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

#include <cstdint>

namespace scisearch::formats {

inline constexpr int kWorkerSocketFd = 3;
inline constexpr int kWorkerProtocol = 2;
inline constexpr uint64_t kMaxWorkerHeaderBytes = uint64_t(1) << 30;
inline constexpr uint64_t kMaxWorkerRequestPayload = uint64_t(1) << 20;  // a path

}  // namespace scisearch::formats
