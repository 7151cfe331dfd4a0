// The readers behind OpenDataset, one per format family. Internal to the formats
// module: everything outside it calls OpenDataset, which picks among these.
//
// Each Open* function parses headers and metadata only and returns a reader that
// reads pixel data lazily. Errors name the file (and field) and the reason.
#pragma once

#include <filesystem>
#include <memory>
#include <span>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::formats {

// FEI/Thermo TIA. `path` is an .emi (opens it with all its _N.ser files) or a .ser
// (opens the .emi beside it when there is one, else the .ser alone).
Result<std::unique_ptr<DatasetReader>> OpenTia(const std::filesystem::path& path);
// Gatan DigitalMicrograph DM3 and DM4.
Result<std::unique_ptr<DatasetReader>> OpenDigitalMicrograph(const std::filesystem::path& path);
// HDF5-based EMD: Berkeley EMD (emd_group_type groups, EMD 1.0 / py4DSTEM) and Thermo Velox EMD.
Result<std::unique_ptr<DatasetReader>> OpenEmd(const std::filesystem::path& path);
// MRC / MRC2014 / CCP4 maps, with FEI extended headers and DE-Server sidecar metadata.
Result<std::unique_ptr<DatasetReader>> OpenMrc(const std::filesystem::path& path);
// TIFF (plain, FEI/Thermo, Zeiss, JEOL SightX, Olympus SIS, TVIPS, DigitalMicrograph export).
Result<std::unique_ptr<DatasetReader>> OpenTiff(const std::filesystem::path& path);
// PNG and JPEG.
Result<std::unique_ptr<DatasetReader>> OpenPng(const std::filesystem::path& path);
Result<std::unique_ptr<DatasetReader>> OpenJpeg(const std::filesystem::path& path);

// OK when `index` names a signal of `dataset`; else kInvalidArgument naming the file
// and how many signals it has. Every reader's Read starts with this check.
Status CheckSignalIndex(const Dataset& dataset, size_t index);

// Magic-byte tests over the first bytes of a file (at least 16 when the file has them).
bool LooksLikeTiaSer(std::span<const uint8_t> head);             // 0x4949 0x0197
bool LooksLikeDigitalMicrograph(std::span<const uint8_t> head);  // version 3 or 4 big-endian
bool LooksLikeHdf5(std::span<const uint8_t> head);               // \x89HDF\r\n\x1a\n
bool LooksLikeTiff(std::span<const uint8_t> head);               // II*\0, MM\0*, BigTIFF
bool LooksLikePng(std::span<const uint8_t> head);
bool LooksLikeJpeg(std::span<const uint8_t> head);
bool LooksLikeGzip(std::span<const uint8_t> head);

}  // namespace scisearch::formats
