// Writers for the instrument formats the readers understand. Internal to the
// simulate module: the simulator writes every file of its facility through
// these, and the round-trip tests read each one back through formats::OpenDataset.
//
// Each writer produces the file layout its instrument software writes (the
// same headers, tag names and metadata vocabulary), so that the readers meet in
// simulated trees what they meet in real ones. Files are written to a temporary
// name beside the target and renamed into place, so a crash never leaves a
// half-written file under the final name.
//
// Thread safety: every function may be called from any thread. The EMD writers
// serialise their HDF5 calls internally (Debian's libhdf5 is not thread-safe).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::simulate {

// One signal to write: its name (detector), axes (one per shape entry, C order,
// slowest first; sizes give the shape) and its data (data.shape equals the axis
// sizes; data.dtype is the stored element type).
struct SignalToWrite {
  std::string name;
  std::vector<formats::Axis> axes;
  formats::NdArray data;
};

// Everything the instrument knew when it recorded an acquisition: the fields
// every reader normalises, plus the few free-text fields instrument software
// stores. Writers put each field where their format keeps it (e.g. TIA's
// ObjectInfo XML, DM's ImageTags.Microscope Info, Velox's JSON, FEI TIFF's
// [Beam]/[EScan] sections) in that format's own units and spellings.
struct Acquisition {
  formats::NormalisedFields fields;  // acquired must be set; others as known
  std::string operator_name;         // who ran the instrument ("" when unknown)
  std::string sample_description;    // what the user typed into the software ("" when unknown)
  std::vector<SignalToWrite> signals;
};

// FEI/Thermo TIA: `emi_path` (…/NAME.emi) and one NAME_<n>.ser per signal, n from 1.
// A signal's leading navigate axes become the SER series dimensions; its last one
// (spectrum) or two (image) axes the element. Returns the paths written, .emi first.
Result<std::vector<std::filesystem::path>> WriteTia(const std::filesystem::path& emi_path,
                                                    const Acquisition& acquisition);

// Gatan DigitalMicrograph, `version` 3 or 4: one ImageList entry per signal (DM also
// writes its thumbnail first, as DigitalMicrograph does).
Status WriteDigitalMicrograph(const std::filesystem::path& path, const Acquisition& acquisition,
                              int version);

// MRC2014 with an FEI2 extended header carrying the acquisition fields. Exactly one
// signal of rank 2 or 3 (a stack or volume).
Status WriteMrc(const std::filesystem::path& path, const Acquisition& acquisition);

// TIFF as FEI/Thermo SEMs and TEMs write it: the image in the first IFD, the
// FEI_HELIOS / FEI_TITAN text metadata tag ([User], [Beam], [Scan], [EScan], ...).
// Exactly one signal of rank 2, uint8 or uint16.
Status WriteFeiTiff(const std::filesystem::path& path, const Acquisition& acquisition);

// Thermo Fisher Velox EMD: /Data/Image|Spectrum|SpectrumImage/<uuid>/{Data, Metadata}
// with the JSON metadata Velox writes, one dataset per signal (several detectors).
Status WriteVeloxEmd(const std::filesystem::path& path, const Acquisition& acquisition);

// Berkeley EMD: /data/<name> groups with emd_group_type = 1, data, dim1..dimN
// (name, units attributes), and the acquisition under /microscope.
Status WriteBerkeleyEmd(const std::filesystem::path& path, const Acquisition& acquisition);

}  // namespace scisearch::simulate
