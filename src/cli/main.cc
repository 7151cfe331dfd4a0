// The scisearch command line. Each subcommand is a thin layer over a module's
// interface; this is the only translation unit that includes CLI11 (it is slow
// to compile).

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "catalog/catalog.h"
#include "cli/context_commands.h"
#include "cli/keyphrase_command.h"
#include "cli/search_commands.h"
#include "cli/serve_command.h"
#include "cli/vision_command.h"
#include "formats/formats.h"
#include "ingest/ingest.h"
#include "simulate/simulate.h"

namespace scisearch::cli {
namespace {

namespace fs = std::filesystem;

std::string FormatShape(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s.empty() ? "scalar" : s;
}

void PrintSummary(const formats::Dataset& ds) {
  std::printf("%s\n  format: %s\n", ds.path.c_str(), ds.format.c_str());
  if (ds.member_files.size() > 1) {
    std::printf("  files:");
    for (const auto& f : ds.member_files) std::printf(" %s", f.filename().c_str());
    std::printf("\n");
  }
  for (size_t i = 0; i < ds.signals.size(); ++i) {
    const formats::Signal& s = ds.signals[i];
    std::printf("  signal %zu: %s\n", i, s.name.empty() ? "(unnamed)" : s.name.c_str());
    std::printf("    shape: %s  dtype: %s  mode: %s\n", FormatShape(s.shape).c_str(),
                std::string(formats::DTypeName(s.dtype)).c_str(),
                std::string(formats::ModeName(s.fields.mode)).c_str());
    for (const formats::Axis& a : s.axes) {
      std::printf("    axis %-10s size %-6lld scale %-12g offset %-10g %s%s\n", a.name.c_str(),
                  static_cast<long long>(a.size), a.scale, a.offset, a.units.c_str(),
                  a.navigate ? "  (navigation)" : "");
    }
    const formats::NormalisedFields& f = s.fields;
    if (f.acquired) std::printf("    acquired: %s\n", f.acquired->c_str());
    if (f.instrument) std::printf("    instrument: %s\n", f.instrument->c_str());
    if (f.beam_energy_kev) std::printf("    beam energy: %g kV\n", *f.beam_energy_kev);
    if (f.magnification) std::printf("    magnification: %g x\n", *f.magnification);
    if (f.pixel_size_m) {
      std::printf("    pixel size: %g %s\n", *f.pixel_size_m,
                  f.pixel_size_units.value_or("m").c_str());
    }
    if (f.detector) std::printf("    detector: %s\n", f.detector->c_str());
    std::printf("    metadata: %zu top-level entries (use --json for the whole tree)\n",
                s.metadata.size());
  }
}

int RunInspect(const fs::path& path, bool json) {
  auto reader = formats::OpenDataset(path);
  if (!reader.ok()) return Fail(reader.status());
  const formats::Dataset& ds = (*reader)->dataset();
  if (json) {
    // Invalid UTF-8 in a file's strings is replaced, never an exception.
    std::cout << formats::DatasetToJson(ds).dump(-1, ' ', false,
                                                 nlohmann::ordered_json::error_handler_t::replace)
              << "\n";
  } else {
    PrintSummary(ds);
  }
  return 0;
}

int RunExport(const fs::path& path, size_t signal, const fs::path& npy) {
  auto reader = formats::OpenDataset(path);
  if (!reader.ok()) return Fail(reader.status());
  Status st = formats::ExportNpy(**reader, signal, npy);
  if (!st.ok()) return Fail(st);
  return 0;
}

// Set by SIGINT/SIGTERM during ingest: the run commits what it has read and stops.
std::atomic<bool> stop_requested{false};
extern "C" void RequestStop(int) { stop_requested.store(true); }

int RunIngest(const fs::path& data_dir, const fs::path& root, int jobs, bool thumbnails,
              const std::string& vision_model) {
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  std::unique_ptr<ingest::ProgressSink> progress = ingest::MakeDefaultProgress();
  ingest::IngestOptions options;
  options.jobs = jobs;
  options.thumbnails = thumbnails;
  options.progress = progress.get();  // prints the summary at the end
  options.temp_dir = data_dir / "tmp";
  std::error_code ec;
  fs::create_directories(options.temp_dir, ec);
  options.stop = &stop_requested;
  std::signal(SIGINT, RequestStop);
  std::signal(SIGTERM, RequestStop);
  auto summary = ingest::Ingest(**catalog, root, options);
  if (!summary.ok()) return Fail(summary.status());
  if (summary->interrupted) return 130;
  LinkAfterWrite(**catalog, summary->root, /*quiet=*/false);
  if (!vision_model.empty()) {
    // The image tags of the new and changed datasets, by the vision executable (libtorch).
    VisionCommand tag;
    tag.action = "tag";
    tag.model = vision_model;
    tag.data_dir = data_dir;
    tag.root = summary->root;
    RunVisionProcess(tag);
  }
  UpdateIndexAfterWrite(**catalog, /*quiet=*/false);
  // Name the files that could not be read, so the operator can act on them.
  auto errors = (*catalog)->ListErrors(summary->run_id);
  if (errors.ok() && !errors->empty()) {
    constexpr size_t kShown = 20;
    std::fprintf(stderr, "%zu file(s) could not be read:\n", errors->size());
    for (size_t i = 0; i < errors->size() && i < kShown; ++i) {
      const catalog::IngestErrorRow& e = (*errors)[i];
      // Readers' reasons name the file already; add the path where one does not.
      if (e.reason.find(e.path) == std::string::npos) {
        std::fprintf(stderr, "  %s: %s\n", e.path.c_str(), e.reason.c_str());
      } else {
        std::fprintf(stderr, "  %s\n", e.reason.c_str());
      }
    }
    if (errors->size() > kShown) {
      std::fprintf(stderr, "  ... and %zu more: scisearch list --state error\n",
                   errors->size() - kShown);
    }
  }
  // 0: everything in the tree is catalogued; 2: some files could not be read, in this run or
  // (unchanged since) in an earlier one: they are listed above and in `scisearch list`.
  return summary->datasets_failed + summary->failed_unchanged > 0 ? 2 : 0;
}

int RunSimulate(const fs::path& out, int64_t files, uint64_t seed, int64_t size, int jobs) {
  simulate::SimulateOptions options;
  options.out = out;
  options.files = files;
  options.seed = seed;
  options.image_size = size;
  options.jobs = jobs;
  options.stop = &stop_requested;
  std::signal(SIGINT, RequestStop);
  std::signal(SIGTERM, RequestStop);
  auto summary = simulate::SimulateFacility(options);
  if (!summary.ok()) return Fail(summary.status());
  std::printf(
      "%s: %lld of %lld acquisitions written (%.1f MB) in %.1f s; %lld proposals, %lld "
      "sessions, %lld publications; truth in truth.jsonl\n",
      out.c_str(), static_cast<long long>(summary->files_written),
      static_cast<long long>(summary->files_planned), double(summary->bytes_written) / 1e6,
      summary->seconds, static_cast<long long>(summary->proposals),
      static_cast<long long>(summary->sessions), static_cast<long long>(summary->publications));
  return summary->interrupted ? 130 : 0;
}

int RunSimulateCatalog(const fs::path& data_dir, const fs::path& root, int64_t records,
                       uint64_t seed) {
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  auto summary = simulate::SimulateCatalog(**catalog, {root, records, seed});
  if (!summary.ok()) return Fail(summary.status());
  std::printf(
      "%s: %lld dataset records under %s in %.1f s; %lld proposals, %lld sessions, %lld "
      "publications\n",
      (data_dir / "catalog.sqlite").c_str(), static_cast<long long>(summary->files_written),
      root.c_str(), summary->seconds, static_cast<long long>(summary->proposals),
      static_cast<long long>(summary->sessions), static_cast<long long>(summary->publications));
  return 0;
}

int RunList(const fs::path& data_dir, const std::string& state, bool json) {
  if (!fs::exists(data_dir / "catalog.sqlite")) {
    return Fail(Status::NotFound((data_dir / "catalog.sqlite").string() +
                                 ": no catalog here (run scisearch ingest first)"));
  }
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  auto rows = (*catalog)->ListDatasets("", state);
  if (!rows.ok()) return Fail(rows.status());
  for (const catalog::DatasetRow& row : *rows) {
    const formats::NormalisedFields& f = row.fields;
    if (json) {
      nlohmann::ordered_json j{{"path", row.path},
                               {"format", row.format},
                               {"state", row.state},
                               {"mode", std::string(formats::ModeName(f.mode))},
                               {"instrument", f.instrument.value_or("")},
                               {"acquired", f.acquired.value_or("")},
                               {"size_bytes", row.size_bytes}};
      if (!row.error.empty()) j["error"] = row.error;
      std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
      continue;
    }
    std::printf("%-5s %-12s %-14s %-19s %-24s %s\n", row.state.c_str(), row.format.c_str(),
                std::string(formats::ModeName(f.mode)).c_str(),
                f.acquired.value_or("-").substr(0, 19).c_str(),
                f.instrument.value_or("-").substr(0, 24).c_str(), row.path.c_str());
    if (!row.error.empty()) std::printf("      error: %s\n", row.error.c_str());
  }
  auto counts = (*catalog)->Counts();
  if (counts.ok() && !json) {
    std::printf(
        "%lld datasets (%lld unreadable, %lld gone), %lld files, %lld signals, "
        "%lld metadata fields, %lld thumbnails\n",
        static_cast<long long>(counts->datasets_ok), static_cast<long long>(counts->datasets_error),
        static_cast<long long>(counts->datasets_gone), static_cast<long long>(counts->files),
        static_cast<long long>(counts->signals), static_cast<long long>(counts->metadata_entries),
        static_cast<long long>(counts->thumbnails));
  }
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "scisearch: find, judge and share the data of a scientific user facility.\n"
      "Reads electron-microscopy files (TIA, DM3/DM4, EMD, MRC, TIFF, PNG, JPEG) into a catalog."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "scisearch 0.1.0");
  std::string data_dir = "./scisearch-data";

  auto add_data_dir = [&](CLI::App* sub) {
    sub->add_option("--data-dir", data_dir, "Data directory holding the catalog")
        ->capture_default_str();
  };

  std::string inspect_path;
  bool inspect_json = false;
  auto* inspect = app.add_subcommand("inspect", "Print the signals and metadata of one file");
  inspect->add_option("PATH", inspect_path, "An instrument file")->required();
  inspect->add_flag("--json", inspect_json, "Print one JSON object");
  add_data_dir(inspect);

  std::string export_path, npy_out;
  size_t export_signal = 0;
  auto* exporter = app.add_subcommand("export", "Write one signal of a file as a NumPy .npy");
  exporter->add_option("PATH", export_path, "An instrument file")->required();
  exporter->add_option("--signal", export_signal, "Index of the signal (see inspect)")
      ->capture_default_str();
  exporter->add_option("--npy", npy_out, "Output .npy file")->required();
  add_data_dir(exporter);

  std::string ingest_root;
  int jobs = 0;  // 0: the module's own default for this machine
  auto* ingester = app.add_subcommand("ingest", "Catalog a folder tree, incrementally");
  ingester->add_option("DIR", ingest_root, "Root of the tree to ingest")->required();
  ingester
      ->add_option("--jobs,-j", jobs,
                   "Parallel readers of each pass (default: 4 x the cores for metadata, cores + 1 "
                   "for thumbnails)")
      ->check(CLI::Range(1, 256));
  bool no_thumbnails = false;
  ingester->add_flag("--no-thumbnails", no_thumbnails,
                     "Catalog metadata only; a later ingest makes the missing thumbnails");
  std::string ingest_vision_model;
  ingester->add_option("--vision-model", ingest_vision_model,
                       "Tag the new images with this model (see `scisearch vision`)");
  add_data_dir(ingester);

  std::string list_state;
  bool list_json = false;
  auto* lister = app.add_subcommand("list", "List the datasets in the catalog");
  lister->add_option("--state", list_state, "Only datasets in this state")
      ->check(CLI::IsMember({"ok", "error", "gone"}));
  lister->add_flag("--json", list_json, "One JSON object per line");
  add_data_dir(lister);

  std::string simulate_out, simulate_root = "/facility";
  int64_t simulate_files = -1;
  uint64_t simulate_seed = 1;
  int64_t simulate_size = 128;
  bool catalog_only = false;
  auto* simulator = app.add_subcommand(
      "simulate", "Write a realistic facility (instrument files, logs, proposals, papers, truth)");
  simulator->add_option("--out", simulate_out, "Folder to write the facility into");
  simulator->add_option("--files", simulate_files,
                        "Acquisitions to write (default 2000; 1000000 with --catalog-only)");
  simulator->add_option("--seed", simulate_seed, "Same seed, same facility")->capture_default_str();
  simulator->add_option("--size", simulate_size, "Pixels along each side of an image")
      ->capture_default_str()
      ->check(CLI::Range(16, 8192));
  simulator->add_option("--jobs,-j", jobs, "Parallel writers (default: the cores)")
      ->check(CLI::Range(1, 256));
  simulator->add_flag("--catalog-only", catalog_only,
                      "Write the records straight into the catalog of --data-dir, no files");
  simulator->add_option("--root", simulate_root, "With --catalog-only: where the files would be")
      ->capture_default_str();
  add_data_dir(simulator);

  auto* reindexer =
      app.add_subcommand("reindex", "Rebuild the search index from the catalog, from scratch");
  add_data_dir(reindexer);

  std::vector<std::string> docs_paths;
  std::string docs_kind = "publication", docs_log_config;
  auto* add_docs = app.add_subcommand(
      "add-docs", "Load user logs, proposals or publications (CSV, JSON, JSON lines, text, PDF)");
  add_docs
      ->add_option("PATH", docs_paths,
                   "Files or folders: logs as CSV/JSON, proposals and publications as JSON "
                   "(lines), publications also as .txt and .pdf")
      ->required();
  add_docs->add_option("--kind", docs_kind, "What the documents are (auto: by folder and content)")
      ->check(CLI::IsMember({"proposal", "publication", "log", "auto"}))
      ->capture_default_str();
  add_docs->add_option("--log-config", docs_log_config,
                       "JSON mapping a log's columns: {\"columns\": {\"start\": \"Begin\"}, "
                       "\"instrument\": \"TitanX\"} (docs/context.md)");
  add_data_dir(add_docs);

  std::string link_root;
  auto* linker = app.add_subcommand(
      "link", "Link datasets to their sessions, proposals and papers, and tag them from context");
  linker->add_option("--root", link_root, "Only the datasets under this folder");
  add_data_dir(linker);

  std::string show_reference;
  bool show_json = false;
  auto* shower = app.add_subcommand(
      "show", "What the catalog knows of one dataset: fields, links with evidence, tags");
  shower->add_option("DATASET", show_reference, "A file of the dataset, or dataset:ID")->required();
  shower->add_flag("--json", show_json, "Print one JSON object");
  add_data_dir(shower);

  std::string keyphrases_in;
  int keyphrases_top = 10;
  auto* keyphraser = app.add_subcommand(
      "keyphrases", "Print the ranked keyphrases of each {\"id\",\"text\"} JSON line");
  keyphraser->add_option("--in", keyphrases_in, "JSON lines with id and text")->required();
  keyphraser->add_option("--top", keyphrases_top, "Keyphrases per text")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));

  SearchCommand search_command;
  bool search_json = false;
  auto* searcher = app.add_subcommand("search", "Search datasets, proposals and publications");
  searcher->add_option("QUERY", search_command.text,
                       "Words, \"phrases\", AND/OR/NOT, pi: instrument: mode: tag: format: "
                       "kind: year:, ranges such as mag>1e6 date:2011-10..2011-12 "
                       "voltage:80..300kV");
  searcher->add_option("--queries", search_command.queries_file,
                       "Run a batch of {\"id\",\"text\"} JSON lines instead");
  searcher->add_option("--like", search_command.like, "Items like this item id (more like this)");
  searcher->add_option("--kind", search_command.kind, "Only items of this kind")
      ->check(CLI::IsMember({"dataset", "proposal", "publication", "log"}));
  searcher->add_option("--top,-n", search_command.top, "Results to show")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  searcher->add_option("--offset", search_command.offset, "Skip this many results (paging)")
      ->check(CLI::NonNegativeNumber);
  searcher->add_option("--sort", search_command.sort, "relevance, newest or oldest")
      ->check(CLI::IsMember({"relevance", "newest", "oldest"}))
      ->capture_default_str();
  searcher->add_flag("--json", search_json, "Print the results as one JSON object");
  searcher->add_option("--format", search_command.output, "text, json or trec (TREC run lines)")
      ->check(CLI::IsMember({"text", "json", "trec"}))
      ->capture_default_str();
  searcher->add_option("--run-tag", search_command.run_tag, "The tag column of TREC lines")
      ->capture_default_str();
  searcher
      ->add_option("--ranking", search_command.ranking,
                   "full, or bm25: plain BM25 alone (the baseline for evaluations)")
      ->check(CLI::IsMember({"full", "bm25"}))
      ->capture_default_str();
  add_data_dir(searcher);

  ServeCommand serve_command;
  auto* server_app = app.add_subcommand("serve", "Serve the web UI and the JSON API (docs/api.md)");
  server_app->add_option("--host", serve_command.host, "Address to listen on")
      ->capture_default_str();
  server_app->add_option("--port", serve_command.port, "Port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  server_app->add_option("--threads", serve_command.threads, "Requests served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  server_app->add_option("--web-root", serve_command.web_root,
                         "Folder of the web UI (default: the installed one)");
  add_data_dir(server_app);

  VisionCommand vision_command;
  auto* vision_app = app.add_subcommand(
      "vision", "Train, evaluate and run the CNN that tags images (docs/vision.md)");
  vision_app->require_subcommand(1);
  auto add_model_options = [&](CLI::App* sub, bool training) {
    sub->add_option("--model", vision_command.model,
                    training ? "Model file to write" : "Model file to use")
        ->required();
    sub->add_option("--threads", vision_command.threads, "Threads for reading and the network")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    add_data_dir(sub);
  };
  auto add_training_options = [&](CLI::App* sub) {
    sub->add_option("--epochs", vision_command.epochs, "Passes over the images (default 30)");
    sub->add_option("--min-steps", vision_command.min_steps,
                    "Small sets get more epochs, up to this many steps (default 400)");
    sub->add_option("--frame-side", vision_command.frame_side,
                    "Longer side images are reduced to (default 320)");
    sub->add_option("--tile-side", vision_command.tile_side,
                    "Side of the square tiles the network reads (default 128)");
    sub->add_option("--texture-side", vision_command.texture_side,
                    "Longer side of the image the texture statistics read; 0: no texture head "
                    "(default 768)");
    sub->add_option("--texture-weight", vision_command.texture_weight,
                    "The texture head's share in the confidences, 0..1 (default: 0.7, or "
                    "another that the held-out images show to be better)")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--seed", vision_command.seed, "Random seed")->capture_default_str();
  };
  auto add_transfer_options = [&](CLI::App* sub) {
    sub->add_option("--pretrained", vision_command.pretrained,
                    "Stage-1 model whose convolutional layers are reused (frozen)");
    sub->add_flag("--fine-tune", vision_command.fine_tune,
                  "With --pretrained: let the last convolutional block learn too");
    sub->add_option("--groups", vision_command.groups_csv,
                    "CSV with path,group columns: images of a group stay together");
  };
  auto* vision_train = vision_app->add_subcommand(
      "train", "Train on a folder per class, or (no --from-folders) on validated tags");
  vision_train->add_option("--from-folders", vision_command.from_folders,
                           "Folder holding one folder of images per class");
  vision_train
      ->add_option("--min-examples", vision_command.min_examples,
                   "Catalog training: datasets a tag needs to be learned")
      ->capture_default_str();
  add_model_options(vision_train, true);
  add_training_options(vision_train);
  add_transfer_options(vision_train);
  auto* vision_pretrain = vision_app->add_subcommand(
      "pretrain", "Stage 1: train on the operating mode the catalog's metadata tells");
  vision_pretrain
      ->add_option("--max-per-mode", vision_command.max_per_mode, "Images of each mode at most")
      ->capture_default_str();
  vision_pretrain->add_option("--root", vision_command.root, "Only datasets under this folder");
  add_model_options(vision_pretrain, true);
  add_training_options(vision_pretrain);
  auto* vision_evaluate = vision_app->add_subcommand(
      "evaluate", "Grouped, stratified k-fold cross-validation on a folder per class");
  vision_evaluate
      ->add_option("--from-folders", vision_command.from_folders,
                   "Folder holding one folder of images per class")
      ->required();
  vision_evaluate->add_option("--folds", vision_command.folds, "Folds")
      ->capture_default_str()
      ->check(CLI::Range(2, 100));
  vision_evaluate->add_flag("--json", vision_command.json, "Print one JSON object");
  vision_evaluate->add_option("--threads", vision_command.threads, "Threads")
      ->capture_default_str();
  add_training_options(vision_evaluate);
  add_transfer_options(vision_evaluate);
  auto* vision_predict =
      vision_app->add_subcommand("predict", "Print the labels a model sees in image files");
  vision_predict->add_option("PATH", vision_command.paths, "Image files")->required();
  vision_predict->add_flag("--json", vision_command.json, "One JSON object per line");
  add_model_options(vision_predict, false);
  auto* vision_tag = vision_app->add_subcommand(
      "tag", "Write a model's image tags and embeddings into the catalog");
  vision_tag->add_option("--root", vision_command.root, "Only datasets under this folder");
  vision_tag
      ->add_option("--min-confidence", vision_command.min_confidence,
                   "Labels below this confidence are not written")
      ->capture_default_str();
  vision_tag->add_flag("--redo", vision_command.redo, "Also datasets this model already saw");
  add_model_options(vision_tag, false);
  auto* vision_similar = vision_app->add_subcommand(
      "similar", "The datasets whose images look most like one dataset's");
  vision_similar->add_option("REFERENCE", vision_command.paths, "PATH or dataset:ID")
      ->required()
      ->expected(1);
  vision_similar->add_option("--top", vision_command.top, "How many")->capture_default_str();
  vision_similar->add_flag("--json", vision_command.json, "One JSON object per line");
  add_data_dir(vision_similar);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*inspect) return RunInspect(inspect_path, inspect_json);
  if (*exporter) return RunExport(export_path, export_signal, npy_out);
  if (*ingester) return RunIngest(data_dir, ingest_root, jobs, !no_thumbnails, ingest_vision_model);
  if (*lister) return RunList(data_dir, list_state, list_json);
  if (*reindexer) return RunReindex(data_dir);
  if (*linker) return RunLink(data_dir, link_root);
  if (*shower) return RunShow(data_dir, show_reference, show_json);
  if (*keyphraser) return RunKeyphrases(keyphrases_in, keyphrases_top, std::cout, std::cerr);
  if (*add_docs) return RunAddDocs(data_dir, docs_paths, docs_kind, docs_log_config);
  if (*vision_app) {
    for (const auto* sub : vision_app->get_subcommands()) vision_command.action = sub->get_name();
    vision_command.data_dir = data_dir;
    return ExecVision(vision_command);
  }
  if (*server_app) {
    serve_command.data_dir = data_dir;
    return RunServe(serve_command);
  }
  if (*searcher) {
    if (search_json) search_command.output = "json";
    const int sources = !search_command.text.empty() + !search_command.queries_file.empty() +
                        !search_command.like.empty();
    if (sources > 1) {
      return Fail(Status::InvalidArgument("search: give one of QUERY, --queries, --like"));
    }
    return RunSearch(data_dir, search_command);
  }
  if (*simulator) {
    if (catalog_only) {
      return RunSimulateCatalog(data_dir, simulate_root,
                                simulate_files > 0 ? simulate_files : 1000000, simulate_seed);
    }
    if (simulate_out.empty())
      return Fail(Status::InvalidArgument("simulate: --out DIR is required"));
    return RunSimulate(simulate_out, simulate_files > 0 ? simulate_files : 2000, simulate_seed,
                       simulate_size, jobs);
  }
  return 1;
}

}  // namespace scisearch::cli

int main(int argc, char** argv) { return scisearch::cli::Main(argc, argv); }
