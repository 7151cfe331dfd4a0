#include "nlp/vocabulary.h"

#include <cstdint>
#include <cstdio>
#include <unordered_map>

#include "common/hash.h"

namespace scisearch::nlp {
namespace {

using K = ConceptKind;

// Forms are written as NormaliseForMatching leaves them. Short forms that are also
// ordinary English words ("sem" is not, "in" would be) are left out.
const std::vector<Concept>& Concepts() {
  static const std::vector<Concept> concepts = {
      // Techniques and operating modes.
      {"tem",
       "TEM",
       K::kTechnique,
       {"tem", "transmission electron microscopy", "transmission electron microscope", "ctem"}},
      {"stem",
       "STEM",
       K::kTechnique,
       {"stem", "scanning transmission electron microscopy",
        "scanning transmission electron microscope"}},
      {"sem",
       "SEM",
       K::kTechnique,
       {"sem", "scanning electron microscopy", "scanning electron microscope"}},
      {"hrtem",
       "HRTEM",
       K::kTechnique,
       {"hrtem", "high resolution tem", "high resolution transmission electron microscopy"}},
      {"haadf",
       "HAADF",
       K::kTechnique,
       {"haadf", "high angle annular dark field", "haadf stem", "z contrast"}},
      {"adf", "ADF", K::kTechnique, {"adf", "annular dark field"}},
      {"abf", "ABF", K::kTechnique, {"abf", "annular bright field"}},
      {"bright-field", "bright field", K::kTechnique, {"bright field", "brightfield", "bf"}},
      {"dark-field", "dark field", K::kTechnique, {"dark field", "darkfield", "df"}},
      {"diffraction",
       "diffraction",
       K::kTechnique,
       {"diffraction", "diffraction pattern", "electron diffraction"}},
      {"saed",
       "SAED",
       K::kTechnique,
       {"saed", "selected area electron diffraction", "selected area diffraction"}},
      {"cbed",
       "CBED",
       K::kTechnique,
       {"cbed", "convergent beam electron diffraction", "convergent beam diffraction"}},
      {"nbd",
       "nanobeam diffraction",
       K::kTechnique,
       {"nanobeam diffraction", "nbd", "nano beam diffraction", "nbed"}},
      {"4d-stem", "4D-STEM", K::kTechnique, {"4d stem", "4dstem", "four dimensional stem"}},
      {"eels",
       "EELS",
       K::kTechnique,
       {"eels", "electron energy loss spectroscopy", "energy loss spectroscopy",
        "electron energy loss"}},
      {"eds",
       "EDS",
       K::kTechnique,
       {"eds", "edx", "edxs", "xeds", "energy dispersive x ray spectroscopy",
        "energy dispersive spectroscopy", "energy dispersive x ray"}},
      {"spectrum-image",
       "spectrum image",
       K::kTechnique,
       {"spectrum image", "spectrum imaging", "si map", "elemental map", "elemental mapping"}},
      {"tomography",
       "tomography",
       K::kTechnique,
       {"tomography", "tomogram", "tilt series", "electron tomography"}},
      {"in-situ", "in situ", K::kTechnique, {"in situ", "insitu", "operando"}},
      {"low-dose", "low dose", K::kTechnique, {"low dose", "lowdose", "dose fractionation"}},
      {"cryo-em", "cryo-EM", K::kTechnique, {"cryo em", "cryoem", "cryo electron microscopy"}},
      {"dpc", "DPC", K::kTechnique, {"dpc", "differential phase contrast"}},
      {"holography",
       "electron holography",
       K::kTechnique,
       {"electron holography", "off axis holography", "holography"}},
      {"ebsd",
       "EBSD",
       K::kTechnique,
       {"ebsd", "electron backscatter diffraction", "electron backscattered diffraction"}},
      {"fft", "FFT", K::kTechnique, {"fft", "fast fourier transform", "power spectrum"}},
      // Detectors.
      {"secondary-electrons",
       "secondary electrons",
       K::kDetector,
       {"secondary electrons", "secondary electron", "se2", "inlens", "in lens"}},
      {"backscattered-electrons",
       "backscattered electrons",
       K::kDetector,
       {"backscattered electrons", "backscattered electron", "backscatter", "bse", "bsd",
        "backscattered"}},
      {"ccd",
       "CCD camera",
       K::kDetector,
       {"ccd", "ccd camera", "ceta", "orius", "ultrascan", "oneview"}},
      {"direct-detector",
       "direct electron detector",
       K::kDetector,
       {"direct electron detector", "direct detector", "k2", "k3", "falcon"}},
      // Materials.
      {"pbse", "lead selenide", K::kMaterial, {"pbse", "lead selenide"}},
      {"pbs", "lead sulfide", K::kMaterial, {"pbs", "lead sulfide", "lead sulphide"}},
      {"pbte", "lead telluride", K::kMaterial, {"pbte", "lead telluride"}},
      {"cdse", "cadmium selenide", K::kMaterial, {"cdse", "cadmium selenide"}},
      {"cds", "cadmium sulfide", K::kMaterial, {"cds", "cadmium sulfide", "cadmium sulphide"}},
      {"znse", "zinc selenide", K::kMaterial, {"znse", "zinc selenide"}},
      {"zno", "zinc oxide", K::kMaterial, {"zno", "zinc oxide"}},
      {"srtio3", "strontium titanate", K::kMaterial, {"srtio3", "strontium titanate", "sto"}},
      {"batio3", "barium titanate", K::kMaterial, {"batio3", "barium titanate", "bto"}},
      {"laalo3", "lanthanum aluminate", K::kMaterial, {"laalo3", "lanthanum aluminate", "lao"}},
      {"tio2",
       "titanium dioxide",
       K::kMaterial,
       {"tio2", "titanium dioxide", "titania", "rutile", "anatase"}},
      {"sio2", "silicon dioxide", K::kMaterial, {"sio2", "silicon dioxide", "silica"}},
      {"al2o3",
       "aluminium oxide",
       K::kMaterial,
       {"al2o3", "alumina", "aluminium oxide", "aluminum oxide", "sapphire"}},
      {"fe3o4", "magnetite", K::kMaterial, {"fe3o4", "magnetite", "iron oxide"}},
      {"ceo2", "cerium oxide", K::kMaterial, {"ceo2", "ceria", "cerium oxide"}},
      {"gan", "gallium nitride", K::kMaterial, {"gan", "gallium nitride"}},
      {"gaas", "gallium arsenide", K::kMaterial, {"gaas", "gallium arsenide"}},
      {"mos2",
       "molybdenum disulfide",
       K::kMaterial,
       {"mos2", "molybdenum disulfide", "molybdenite"}},
      {"ws2", "tungsten disulfide", K::kMaterial, {"ws2", "tungsten disulfide"}},
      {"hbn", "hexagonal boron nitride", K::kMaterial, {"hbn", "h bn", "hexagonal boron nitride"}},
      {"graphene", "graphene", K::kMaterial, {"graphene", "graphene oxide"}},
      {"carbon-nanotube",
       "carbon nanotube",
       K::kMaterial,
       {"carbon nanotube", "carbon nanotubes", "cnt", "cnts", "swcnt", "mwcnt"}},
      {"zns", "zinc sulfide", K::kMaterial, {"zns", "zinc sulfide", "zinc sulphide"}},
      {"inp", "indium phosphide", K::kMaterial, {"inp", "indium phosphide"}},
      {"inas", "indium arsenide", K::kMaterial, {"inas", "indium arsenide"}},
      {"wse2", "tungsten diselenide", K::kMaterial, {"wse2", "tungsten diselenide"}},
      {"mose2", "molybdenum diselenide", K::kMaterial, {"mose2", "molybdenum diselenide"}},
      {"bi2se3", "bismuth selenide", K::kMaterial, {"bi2se3", "bismuth selenide"}},
      {"bi2te3", "bismuth telluride", K::kMaterial, {"bi2te3", "bismuth telluride"}},
      {"sic", "silicon carbide", K::kMaterial, {"sic", "silicon carbide"}},
      {"si3n4", "silicon nitride", K::kMaterial, {"si3n4", "silicon nitride"}},
      {"zro2", "zirconium dioxide", K::kMaterial, {"zro2", "zirconia", "zirconium dioxide"}},
      {"hfo2", "hafnium dioxide", K::kMaterial, {"hfo2", "hafnia", "hafnium dioxide"}},
      {"nio", "nickel oxide", K::kMaterial, {"nio", "nickel oxide"}},
      {"co3o4", "cobalt oxide", K::kMaterial, {"co3o4", "cobalt oxide"}},
      {"cuo", "copper oxide", K::kMaterial, {"cuo", "cupric oxide"}},
      {"cu2o", "cuprous oxide", K::kMaterial, {"cu2o", "cuprous oxide"}},
      {"sno2", "tin dioxide", K::kMaterial, {"sno2", "tin dioxide", "tin oxide"}},
      {"mgo", "magnesium oxide", K::kMaterial, {"mgo", "magnesium oxide", "periclase"}},
      {"fe2o3", "hematite", K::kMaterial, {"fe2o3", "hematite"}},
      {"bifeo3", "bismuth ferrite", K::kMaterial, {"bifeo3", "bismuth ferrite", "bfo"}},
      {"pbtio3", "lead titanate", K::kMaterial, {"pbtio3", "lead titanate", "pto"}},
      {"licoo2", "lithium cobalt oxide", K::kMaterial, {"licoo2", "lithium cobalt oxide", "lco"}},
      {"lsmo",
       "lanthanum strontium manganite",
       K::kMaterial,
       {"lsmo", "lanthanum strontium manganite"},
       {"La", "Sr", "Mn", "O"}},
      {"ysz",
       "yttria-stabilised zirconia",
       K::kMaterial,
       {"ysz", "yttria stabilised zirconia", "yttria stabilized zirconia"},
       {"Y", "Zr", "O"}},
      {"ybco",
       "yttrium barium copper oxide",
       K::kMaterial,
       {"ybco", "yttrium barium copper oxide", "yba2cu3o7"},
       {"Y", "Ba", "Cu", "O"}},
      {"ito", "indium tin oxide", K::kMaterial, {"ito", "indium tin oxide"}, {"In", "Sn", "O"}},
      {"pt3ni",
       "platinum nickel",
       K::kMaterial,
       {"pt3ni", "ptni", "platinum nickel", "pt ni alloy"},
       {"Pt", "Ni"}},
      {"316l",
       "316L stainless steel",
       K::kMaterial,
       {"316l", "ss316", "ss316l", "316 steel", "316l stainless steel", "316 stainless steel"},
       {"Fe", "Cr", "Ni", "Mo"}},
      {"t91",
       "ferritic-martensitic steel",
       K::kMaterial,
       {"t91", "t91 steel", "ht9", "fm steel", "ferritic martensitic steel"},
       {"Fe", "Cr", "Mo"}},
      {"ti-6al-4v",
       "Ti-6Al-4V",
       K::kMaterial,
       {"ti 6al 4v", "ti6al4v", "ti64", "ti 6 4", "titanium alloy"},
       {"Ti", "Al", "V"}},
      {"aa2024",
       "AA2024",
       K::kMaterial,
       {"aa2024", "al 2024", "2024 aluminium", "2024 aluminum", "aluminium alloy 2024"},
       {"Al", "Cu", "Mg"}},
      {"inconel-718",
       "Inconel 718",
       K::kMaterial,
       {"inconel 718", "in718", "inconel", "alloy 718"},
       {"Ni", "Cr", "Fe", "Nb"}},
      {"zeolite-y",
       "zeolite Y",
       K::kMaterial,
       {"zeolite y", "nay", "nay zeolite", "faujasite", "fau", "usy"},
       {"Na", "Si", "Al", "O"}},
      {"zsm-5",
       "ZSM-5",
       K::kMaterial,
       {"zsm 5", "zsm5", "zeolite zsm 5", "mfi", "mfi zeolite", "h zsm 5"},
       {"Si", "Al", "O"}},
      {"zif-8", "ZIF-8", K::kMaterial, {"zif 8", "zif8"}, {"Zn", "C", "N"}},
      {"mof",
       "metal-organic framework",
       K::kMaterial,
       {"mof", "mofs", "metal organic framework", "metal organic frameworks"}},
      {"zeolite", "zeolite", K::kMaterial, {"zeolite", "zeolites"}},
      {"perovskite", "perovskite", K::kMaterial, {"perovskite", "perovskites"}},
      {"steel", "steel", K::kMaterial, {"steel", "steels", "uhcs", "ultrahigh carbon steel"}},
      {"ligand", "ligands", K::kMaterial, {"ligand", "ligands", "oleic acid", "oleylamine"}},
      // Morphology.
      {"nanoparticle",
       "nanoparticles",
       K::kMorphology,
       {"nanoparticle", "nanoparticles", "nanocrystal", "nanocrystals", "quantum dot",
        "quantum dots"}},
      {"nanowire", "nanowires", K::kMorphology, {"nanowire", "nanowires", "nanorod", "nanorods"}},
      {"thin-film", "thin film", K::kMorphology, {"thin film", "thin films"}},
      {"interface", "interface", K::kMorphology, {"interface", "interfaces", "heterointerface"}},
      {"grain-boundary",
       "grain boundary",
       K::kMorphology,
       {"grain boundary", "grain boundaries", "gb"}},
      {"dislocation", "dislocation", K::kMorphology, {"dislocation", "dislocations"}},
      {"defect", "defects", K::kMorphology, {"defect", "defects", "vacancy", "vacancies"}},
      {"core-shell", "core-shell", K::kMorphology, {"core shell", "coreshell"}},
      {"superlattice",
       "superlattice",
       K::kMorphology,
       {"superlattice", "superlattices", "self assembly", "self assembled"}},
      {"spheroidite", "spheroidite", K::kMorphology, {"spheroidite", "spheroidized"}},
      {"pearlite", "pearlite", K::kMorphology, {"pearlite", "pearlitic"}},
      {"martensite", "martensite", K::kMorphology, {"martensite", "martensitic"}},
      {"lamellae", "lamellae", K::kMorphology, {"lamellae", "lamellar", "lamella"}},
      // Quality.
      {"atomic-resolution",
       "atomic resolution",
       K::kQuality,
       {"atomic resolution", "atomically resolved", "atomic columns"}},
      {"lattice-fringes",
       "lattice fringes",
       K::kQuality,
       {"lattice fringes", "lattice fringe", "lattice image"}},
      {"drift", "drift", K::kQuality, {"drift", "drifted", "sample drift"}},
      {"out-of-focus", "out of focus", K::kQuality, {"out of focus", "defocused", "unfocused"}},
      {"beam-damage",
       "beam damage",
       K::kQuality,
       {"beam damage", "radiation damage", "beam damaged"}},
      {"overview",
       "overview",
       K::kQuality,
       {"overview", "low mag", "low magnification", "survey image", "survey"}},
      {"search-image", "search image", K::kQuality, {"search image", "preview image"}},
  };
  return concepts;
}

bool IsAsciiAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Forms by their first word, for matching a text word by word.
struct FormIndex {
  struct Entry {
    std::vector<std::string_view> words;
    size_t concept_index;
  };
  std::unordered_map<std::string_view, std::vector<Entry>> by_first_word;
};

const FormIndex& Forms() {
  static const FormIndex index = [] {
    FormIndex built;
    const std::vector<Concept>& concepts = Concepts();
    for (size_t i = 0; i < concepts.size(); ++i) {
      for (std::string_view form : concepts[i].forms) {
        std::vector<std::string_view> words = SplitWords(form);
        if (words.empty()) continue;
        built.by_first_word[words.front()].push_back({std::move(words), i});
      }
    }
    return built;
  }();
  return index;
}

}  // namespace

std::vector<std::string_view> SplitWords(std::string_view text) {
  std::vector<std::string_view> words;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

std::span<const Concept> DomainVocabulary() { return Concepts(); }

std::string NormaliseForMatching(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (unsigned char c : text) {
    if (IsAsciiAlnum(c) || c >= 0x80) {
      if (pending_space && !out.empty()) out.push_back(' ');
      pending_space = false;
      out.push_back((c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c));
    } else {
      pending_space = true;
    }
  }
  return out;
}

std::vector<std::string_view> FindConcepts(std::string_view text) {
  const std::string normalised = NormaliseForMatching(text);
  const std::vector<std::string_view> words = SplitWords(normalised);
  const FormIndex& forms = Forms();
  std::vector<bool> found(Concepts().size(), false);
  for (size_t i = 0; i < words.size(); ++i) {
    auto it = forms.by_first_word.find(words[i]);
    if (it == forms.by_first_word.end()) continue;
    for (const FormIndex::Entry& entry : it->second) {
      if (i + entry.words.size() > words.size()) continue;
      bool match = true;
      for (size_t k = 1; k < entry.words.size() && match; ++k) {
        match = words[i + k] == entry.words[k];
      }
      if (match) found[entry.concept_index] = true;
    }
  }
  std::vector<std::string_view> ids;
  for (size_t i = 0; i < found.size(); ++i) {
    if (found[i]) ids.push_back(Concepts()[i].id);
  }
  return ids;
}

std::string VocabularyFingerprint() {
  uint64_t hash = Fnv1a("");  // over ids and forms, each ended by a byte no text has
  auto mix = [&hash](std::string_view text) { hash = Fnv1a("\xff", Fnv1a(text, hash)); };
  for (const Concept& concept_entry : Concepts()) {
    mix(concept_entry.id);
    for (std::string_view form : concept_entry.forms) mix(form);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace scisearch::nlp
