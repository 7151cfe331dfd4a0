// Hooks into OpenEmd's pool of HDF5 worker processes, for tests. Internal to the
// formats module.
#pragma once

#include <cstdint>

namespace scisearch::formats {

// Ends every idle worker process (closes its socket and reaps it). Workers serving a
// request are left alone. The next OpenEmd starts new ones, looking the executable up
// again (SCISEARCH_HDF5_WORKER included).
void StopIdleHdf5Workers();

// How many worker processes this process has started so far.
uint64_t Hdf5WorkersStarted();

}  // namespace scisearch::formats
