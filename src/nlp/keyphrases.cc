#include "nlp/keyphrases.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>
#include <utility>

#include "common/hash.h"
#include "formats/text.h"
#include "nlp/vocabulary.h"

namespace scisearch::nlp {
namespace {

// ---------------------------------------------------------------------------
// Tunable weights. Set on Inspec-style abstracts (bench/keyphrase_eval.sh) with general
// features only, on the two thirds of inspec-dev whose id is not divisible by 3; the
// other third is held out to check that they carry over to unseen abstracts.

// Longest candidate, in words. Gold keyphrases of abstracts are 1-3 words, rarely 4.
constexpr size_t kMaxPhraseWords = 4;
// Words longer than this are noise (URLs, hashes), never part of a phrase.
constexpr size_t kMaxWordBytes = 48;
// Co-occurrence window over the sequence of candidate words (SingleRank uses 10,
// TextRank 2; the optimum for abstracts lies between).
constexpr size_t kCooccurrenceWindow = 4;
constexpr double kDamping = 0.85;
constexpr int kMaxPageRankIterations = 60;
// How strongly a word's corpus rarity counts: score * idf^kIdfExponent.
constexpr double kIdfExponent = 1.0;
// A phrase that recurs counts more: * (1 + kFrequencyWeight * log(count)).
constexpr double kFrequencyWeight = 0.5;
// Phrases seen in the first sentence (the title, in a record) count more.
constexpr double kFirstSentenceBonus = 1.0;
// A phrase that is a term of the domain vocabulary, or contains one.
constexpr double kVocabularyBonus = 1.5;
// The earlier a phrase first occurs, the more: * (1 + kPositionWeight * (1 - offset)),
// offset the relative position of its first word in the text.
constexpr double kPositionWeight = 2.0;
// A phrase of several words that the text writes as a whole noun phrase (the full run
// of phrase words between stop words and punctuation: "adaptive wavelet transform")
// is what a reader would name; a piece cut out of a longer run ("adaptive wavelet")
// rarely is. * (1 + kWholeRunWeight * share of its occurrences that are whole runs).
// The same for pieces that end on the run's last word, its head noun.
constexpr double kWholeRunWeight = 10.0;
constexpr double kRunEndWeight = 1.0;
// Single words say less than phrases (and in abstracts are rarely the keyphrase).
constexpr double kSingleWordFactor = 0.2;
// A word is a verb when it follows "to", "we", "can" ... at least this often, and
// more than kVerbEvidenceRatio times as often as "the", "of" ...
constexpr uint32_t kVerbMinimumEvidence = 2;
constexpr double kVerbEvidenceRatio = 2.0;

// ---------------------------------------------------------------------------
// Characters.

// Decodes one UTF-8 character at text[pos] into *codepoint; returns its length in
// bytes, or 0 when the bytes there are not well-formed UTF-8 (overlong, surrogate,
// truncated, above U+10FFFF).
size_t DecodeUtf8(std::string_view text, size_t pos, char32_t* codepoint) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    *codepoint = lead;
    return 1;
  }
  size_t length;
  char32_t value;
  char32_t minimum;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(pos + i) & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *codepoint = value;
  return length;
}

enum class CharClass {
  kWord,         // letter or digit, of any script
  kSpace,        // separates words, not phrases
  kJoiner,       // hyphen: inside a word when letters are on both sides ("real-time")
  kApostrophe,   // inside a word ("don't"); "'s" ends one
  kSentenceEnd,  // . ! ? when white space follows
  kBreak,        // any other punctuation or symbol: ends a phrase
};

CharClass Classify(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return CharClass::kWord;
  }
  switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case 0xA0:    // no-break space
    case 0x3000:  // ideographic space
      return CharClass::kSpace;
    case '-':
    case 0x2010:  // hyphen
    case 0x2011:  // non-breaking hyphen
      return CharClass::kJoiner;
    case '\'':
    case 0x2019:  // right single quotation mark, the usual typeset apostrophe
      return CharClass::kApostrophe;
    case '.':
    case '!':
    case '?':
    case 0x2026:  // ellipsis
      return CharClass::kSentenceEnd;
    default:
      break;
  }
  if (c < 0x80) return CharClass::kBreak;  // ASCII controls and punctuation
  if (c >= 0x2000 && c <= 0x200B) return CharClass::kSpace;
  // Latin-1 symbols (but the letter-like ª µ º), × ÷, general punctuation, super-
  // and subscripts, currency, arrows, mathematical and technical symbols, box
  // drawing, dingbats, CJK punctuation, half/full-width punctuation, specials.
  if ((c >= 0x80 && c <= 0xBF && c != 0xAA && c != 0xB5 && c != 0xBA) || c == 0xD7 || c == 0xF7 ||
      (c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
      (c >= 0xFE10 && c <= 0xFE6F) || (c >= 0xFF01 && c <= 0xFF0F) ||
      (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFFF0 && c <= 0xFFFF)) {
    return CharClass::kBreak;
  }
  return CharClass::kWord;
}

// The lowercase of `c` for the cased letters of Latin (ASCII, Latin-1, Latin
// Extended-A), Greek and Cyrillic: the scripts of European scientific prose. Other
// characters are returned unchanged.
char32_t LowerCase(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
      (c >= 0x410 && c <= 0x42F)) {
    return c + 32;  // Latin-1 (not ×), Greek (not the unassigned U+03A2), Cyrillic
  }
  if (c >= 0x400 && c <= 0x40F) return c + 80;  // Cyrillic Ѐ-Џ
  // Latin Extended-A pairs capital, small: even capitals in U+0100-U+0137 and
  // U+014A-U+0177, odd ones in U+0139-U+0148 and U+0179-U+017E.
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1;
  if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1)) return c + 1;
  if (c == 0x178) return 0xFF;  // Ÿ
  return c;
}

// ---------------------------------------------------------------------------
// Word lists.

// The words of `list` (separated by single spaces). Views into `list`, which must be
// static.
std::unordered_set<std::string_view> SplitAtSpaces(std::string_view list) {
  std::unordered_set<std::string_view> words;
  for (size_t start = 0; start < list.size();) {
    size_t end = list.find(' ', start);
    if (end == std::string_view::npos) end = list.size();
    if (end > start) words.insert(list.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

// Function words, and the verbs, adverbs and vague words of academic prose that
// never begin, end or sit inside a keyphrase. Lowercase; apostrophes as ASCII.
const std::unordered_set<std::string_view>& StopWords() {
  static const std::unordered_set<std::string_view> words = SplitAtSpaces(
      // Function words.
      "a about above across after afterwards again against all almost alone along already also "
      "although always am among amongst an and another any anyhow anyone anything anyway "
      "anywhere are aren't around as at be became because become becomes becoming been before "
      "beforehand behind being below beside besides between beyond both but by can can't "
      "cannot could couldn't did didn't do does doesn't doing don't done down during each "
      "either else elsewhere enough etc even ever every everyone everything everywhere except "
      "few fewer for former formerly from further furthermore had hadn't has hasn't have "
      "haven't having he hence her here hereby herein hers herself him himself his how however "
      "i ie eg if in indeed into is isn't it it's its itself just last latter least less many "
      "may me meanwhile might mine more moreover most mostly much must my myself namely "
      "neither never nevertheless next no nobody none nor not nothing now nowhere of off often "
      "on once one only onto or other others otherwise our ours ourselves out over own per "
      "perhaps rather same several she should shouldn't since so some somehow someone "
      "something sometimes somewhat somewhere still such than that the their theirs them "
      "themselves then thence there thereafter thereby therefore therein thereof these they "
      "this those though through throughout thru thus to together too toward towards under "
      "unless until up upon us very via was wasn't we well were weren't what whatever when "
      "whence whenever where whereas whereby wherein whether which while whilst who whoever "
      "whole whom whose why will with within without won't would wouldn't yet you your yours "
      "yourself yourselves today two three four five six seven eight nine ten first second "
      "third i.e e.g et al vs versus let lets like unlike s "
      // Vague words of academic prose.
      "paper article work works way ways thing things lot lots kind kinds fact terms respect "
      "regard basis aspect aspects issue issues result results example examples addition use "
      "uses means able unable possible available certain various different important good "
      "better best higher highest lower lowest larger largest smaller smallest new novel main "
      "major specific particular similar due following previous recent current given simple "
      "proposed existing obtained related based using used called known efficient traditional "
      "conventional general basic individual successful corresponding common future typical "
      "original appropriate effective accurate unknown special growing significant useful "
      "necessary relevant suitable additional numerous overall entire essential fundamental "
      "practical powerful popular interesting difficult easy great little author authors "
      // Verbs of reporting and doing (every form).
      "present presents presented presenting propose proposes proposing describe describes "
      "described describing show shows showed shown showing discuss discusses discussed "
      "discussing allow allows allowed allowing provide provides provided providing give gives "
      "gave giving make makes made making require requires required requiring obtain obtains "
      "obtaining consider considers considered considering introduce introduces introduced "
      "introducing develop develops developed developing achieve achieves achieved achieving "
      "demonstrate demonstrates demonstrated demonstrating investigate investigates "
      "investigated investigating examine examines examined examining compare compares "
      "compared comparing apply applies applied applying find finds found finding include "
      "includes included including improve improves improved improving reduce reduces reduced "
      "reducing perform performs performed derive derives derived deriving establish "
      "establishes established evaluate evaluates evaluated evaluating suggest suggests "
      "suggested suggesting illustrate illustrates illustrated illustrating reported address "
      "addresses addressed addressing enable enables enabled exist exists existed seem seems "
      "seemed appear appears appeared remain remains remained contain contains contained "
      "containing involve involves involved involving lead leads led take takes took taken "
      "taking get gets got getting yield yields yielded deal deals dealt dealing focus focuses "
      "focused focusing helped need needs needed aim aims aimed try tries tried want wants "
      "wanted say says said see sees seen saw know knows knew think thinks thought come comes "
      "came go goes went gone keep keeps kept put puts turn turns turned become becomes ensure "
      "ensures ensured verify verifies verified prove proves proved proven explain explains "
      "explained outline outlines outlined reviewed solve solves solved study studied studies "
      "analyze analyzes analyzed analyse analyses analysed determine determines determined "
      "determining produce produces produced producing generate generates generated generating "
      "define defines defined designed increase increases increased increasing decrease "
      "decreases decreased offer offers offered supported represent represents represented "
      "indicate indicates indicated reveal reveals revealed extend extends extended employ "
      "employs employed employing adopt adopts adopted exhibit exhibits exhibited carry "
      "carried carries implement implements implemented implementing according regarding "
      "concerning respectively");
  return words;
}

// Words ending in -ly that are not adverbs.
const std::unordered_set<std::string_view>& NonAdverbsEndingInLy() {
  static const std::unordered_set<std::string_view> words = SplitAtSpaces(
      "assembly family supply anomaly monopoly butterfly italy reply ally rally jelly belly "
      "bully lily folly oligopoly homily duopoly panoply july apply multiply emily "
      "disassembly resupply firefly dragonfly");
  return words;
}

bool EndsWith(std::string_view word, std::string_view suffix) {
  return word.size() >= suffix.size() && word.substr(word.size() - suffix.size()) == suffix;
}

bool IsAsciiUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// ---------------------------------------------------------------------------
// Analysis of one text: tokens, word types, candidates.

// A word as it occurs. Offsets into the analysed text.
struct Token {
  uint32_t begin = 0;
  uint32_t length = 0;
  uint32_t word = 0;                 // index into Analysis::words
  uint32_t sentence = 0;             // counts from 0
  bool phrase_break_before = false;  // punctuation or a sentence end since the previous token
  bool sentence_start = false;
  // Capitalised (not an acronym) right after a lowercase word: a name or a heading
  // begins ("... in optimization Imaging satellites ...").
  bool case_break_before = false;
};

// Function words that announce the part of speech of the next word: "to", "we",
// "can" a verb; "the", "its", "of" a noun phrase.
enum class WordContext : uint8_t { kNone, kBeforeVerb, kBeforeNoun };

WordContext Announces(std::string_view lower) {
  static const std::unordered_set<std::string_view> before_verb = {
      "to",     "we",    "they",  "it",   "can", "cannot", "will", "may",   "might", "must",
      "should", "could", "would", "does", "did", "not",    "also", "which", "who"};
  static const std::unordered_set<std::string_view> before_noun = {
      "the", "a",   "an",   "this",  "these", "those", "its", "their", "our",
      "his", "her", "each", "every", "of",    "such",  "any", "some"};
  if (before_verb.contains(lower)) return WordContext::kBeforeVerb;
  if (before_noun.contains(lower)) return WordContext::kBeforeNoun;
  return WordContext::kNone;
}

using keyphrase_internal::ContextCounts;

// A distinct word (by lowercase spelling) of the text.
struct WordType {
  std::string stem;
  uint64_t stem_key = 0;  // Fnv1a(stem)
  uint32_t stem_index = 0;
  bool in_phrases = false;                   // may be part of a candidate
  bool can_end = true;                       // may be a candidate's last word
  bool capitalised_inside_sentence = false;  // seen with a capital other than at a sentence start
  bool inflected =
      false;  // ends in -ing or -ed: a verb form that often serves as noun or adjective
  WordContext announces = WordContext::kNone;  // what this word says of the next one
};

struct Candidate {
  uint64_t key = 0;  // fingerprint of its stems
  uint32_t first_token = 0;
  uint32_t length = 0;  // words
  uint32_t count = 0;
  uint32_t first_sentence = 0;
  uint32_t whole_runs = 0;  // occurrences that are a whole run of phrase words
  uint32_t run_ends = 0;    // occurrences that end a run
  double score = 0;
};

struct Analysis {
  std::vector<Token> tokens;
  std::vector<WordType> words;
  size_t stem_count = 0;              // distinct stems of words that may be in phrases
  std::vector<Candidate> candidates;  // in order of first occurrence
  std::unordered_map<uint64_t, ContextCounts> contexts;  // by stem key
};

// Fingerprint of a sequence of stems: the first stem's Fnv1a, each further stem
// chained after a unit separator (a byte no word contains).
uint64_t ExtendKey(uint64_t key, const std::string& stem) {
  return Fnv1a(stem, Fnv1a("\x1f", key));
}

// Classifies a lowercase word: may it be in a phrase, may it end one.
void ClassifyWord(std::string_view lower, WordType* type) {
  bool has_letter = false;
  for (char c : lower) has_letter |= !IsAsciiDigit(c) && c != '-' && c != '\'';
  type->in_phrases = has_letter && lower.size() >= 2 && lower.size() <= kMaxWordBytes &&
                     !StopWords().contains(lower);
  // Adverbs ("significantly") are not part of noun phrases.
  if (type->in_phrases && lower.size() > 4 && EndsWith(lower, "ly") &&
      !NonAdverbsEndingInLy().contains(lower)) {
    type->in_phrases = false;
  }
  // A past participle ends a clause, not a noun phrase ("the method proposed");
  // before a noun it is an adjective and stays ("distributed systems").
  type->can_end = !(lower.size() >= 5 && EndsWith(lower, "ed") && !EndsWith(lower, "eed"));
}

// Splits `text` into tokens and word types (stemming each distinct word once).
void Tokenise(std::string_view text, const Stemmer& stemmer, Analysis* analysis) {
  std::unordered_map<std::string, uint32_t> word_index;
  std::unordered_map<std::string, uint32_t> stem_index;
  bool pending_break = true;
  bool new_sentence = true;
  bool previous_lowercase = false;
  uint32_t sentence = 0;
  std::string lower;

  const auto class_at = [&](size_t pos, size_t* length) {
    char32_t c = 0;
    *length = pos < text.size() ? DecodeUtf8(text, pos, &c) : 0;
    if (*length == 0) {
      *length = 1;
      return CharClass::kBreak;  // invalid UTF-8, or past the end
    }
    return Classify(c);
  };

  size_t pos = 0;
  // Texts over 4 GiB are cut: offsets are 32-bit.
  const size_t end_of_text = std::min<size_t>(text.size(), 0xFFFFFFF0u);
  text = text.substr(0, end_of_text);
  while (pos < text.size()) {
    size_t length;
    const CharClass cls = class_at(pos, &length);
    if (cls != CharClass::kWord) {
      if (cls == CharClass::kSentenceEnd) {
        size_t next_length;
        const bool at_end = pos + length >= text.size();
        if (at_end || class_at(pos + length, &next_length) == CharClass::kSpace) {
          if (!new_sentence) ++sentence;
          new_sentence = true;
        }
        pending_break = true;
      } else if (cls != CharClass::kSpace) {
        pending_break = true;
      }
      pos += length;
      continue;
    }
    // A word: letters and digits, joined by single hyphens and apostrophes.
    const size_t begin = pos;
    size_t word_end = pos + length;
    pos = word_end;
    while (pos < text.size()) {
      size_t l1;
      const CharClass c1 = class_at(pos, &l1);
      if (c1 == CharClass::kWord) {
        pos += l1;
        word_end = pos;
        continue;
      }
      if (c1 != CharClass::kJoiner && c1 != CharClass::kApostrophe) break;
      size_t l2;
      if (pos + l1 >= text.size() || class_at(pos + l1, &l2) != CharClass::kWord) break;
      if (c1 == CharClass::kApostrophe && (text[pos + l1] == 's' || text[pos + l1] == 'S')) {
        size_t l3;
        const size_t after = pos + l1 + 1;
        if (after >= text.size() || class_at(after, &l3) != CharClass::kWord) {
          pos = after;  // possessive "'s": the word ends before it
          break;
        }
      }
      pos += l1;
    }
    const std::string_view surface = text.substr(begin, word_end - begin);
    // Abstract databases (Inspec, INSPEC-derived records) write sub- and superscripts
    // as "Al/sub 2/O/sub 3/": "sub" and "sup" right after a slash are markup, not
    // words, and the formula they sit in is no phrase.
    if (begin > 0 && text[begin - 1] == '/' && (surface == "sub" || surface == "sup")) {
      pending_break = true;
      continue;
    }
    lower.clear();
    for (size_t i = 0; i < surface.size();) {
      char32_t c = 0;
      const size_t length = DecodeUtf8(surface, i, &c);  // > 0: the word is valid UTF-8
      if (c == 0x2019) {
        lower.push_back('\'');  // the typeset apostrophe reads as '
      } else {
        formats::AppendUtf8(LowerCase(c), lower);
      }
      i += length;
    }

    auto [it, inserted] = word_index.try_emplace(lower, analysis->words.size());
    if (inserted) {
      WordType type;
      ClassifyWord(lower, &type);
      type.inflected = EndsWith(lower, "ing") || EndsWith(lower, "ed");
      type.announces = Announces(lower);
      type.stem = stemmer.Stem(lower);
      type.stem_key = Fnv1a(type.stem);
      if (type.in_phrases) {
        auto [stem_it, new_stem] = stem_index.try_emplace(type.stem, stem_index.size());
        type.stem_index = stem_it->second;
      }
      analysis->words.push_back(std::move(type));
    }
    Token token;
    token.begin = static_cast<uint32_t>(begin);
    token.length = static_cast<uint32_t>(surface.size());
    token.word = it->second;
    token.sentence = sentence;
    token.phrase_break_before = pending_break;
    token.sentence_start = new_sentence;
    if (!new_sentence && IsAsciiUpper(surface.front())) {
      analysis->words[token.word].capitalised_inside_sentence = true;
      const bool acronym = std::none_of(surface.begin() + 1, surface.end(),
                                        [](char c) { return c >= 'a' && c <= 'z'; });
      token.case_break_before = !acronym && previous_lowercase;
    }
    previous_lowercase = surface.front() >= 'a' && surface.front() <= 'z';
    if (!pending_break && !analysis->tokens.empty()) {
      const WordContext context = analysis->words[analysis->tokens.back().word].announces;
      if (context != WordContext::kNone) {
        ContextCounts& counts = analysis->contexts[analysis->words[token.word].stem_key];
        ++(context == WordContext::kBeforeVerb ? counts.after_verb_marker
                                               : counts.after_noun_marker);
      }
    }
    analysis->tokens.push_back(token);
    pending_break = false;
    new_sentence = false;
  }
  analysis->stem_count = stem_index.size();
}

// Where an occurrence sits in its run of phrase words.
struct RunPlace {
  bool whole = false;   // it is the whole run: a complete noun phrase of the text
  bool at_end = false;  // it ends where the run ends: on the run's head noun
};

// Calls visit(first_token, length, key, place) for every candidate occurrence, in
// text order: each run of phrase words between breaks, every 1..kMaxPhraseWords
// sub-sequence of it whose last word may end a phrase.
template <typename Visit>
void ForEachCandidateOccurrence(const Analysis& analysis, Visit visit) {
  const std::vector<Token>& tokens = analysis.tokens;
  size_t run_begin = 0;
  while (run_begin < tokens.size()) {
    if (!analysis.words[tokens[run_begin].word].in_phrases) {
      ++run_begin;
      continue;
    }
    size_t run_end = run_begin + 1;
    while (run_end < tokens.size() && !tokens[run_end].phrase_break_before &&
           !tokens[run_end].case_break_before && analysis.words[tokens[run_end].word].in_phrases) {
      ++run_end;
    }
    for (size_t first = run_begin; first < run_end; ++first) {
      uint64_t key = 0;
      for (size_t n = 1; n <= kMaxPhraseWords && first + n <= run_end; ++n) {
        const WordType& last = analysis.words[tokens[first + n - 1].word];
        key = n == 1 ? last.stem_key : ExtendKey(key, last.stem);
        if (!last.can_end) continue;
        RunPlace place;
        place.at_end = first + n == run_end;
        place.whole = place.at_end && first == run_begin;
        visit(first, n, key, place);
      }
    }
    run_begin = run_end;
  }
}

// Takes out of phrases the uninflected words that, in this text and the corpus, follow
// "to", "we", "can" ... more often than "the", "of" ...: verbs ("maintains", "helps").
void ExcludeVerbs(const std::unordered_map<uint64_t, ContextCounts>* corpus_contexts,
                  Analysis* analysis) {
  for (WordType& type : analysis->words) {
    if (!type.in_phrases || type.inflected) continue;
    ContextCounts counts;
    if (auto it = analysis->contexts.find(type.stem_key); it != analysis->contexts.end()) {
      counts = it->second;
    }
    if (corpus_contexts != nullptr) {
      if (auto it = corpus_contexts->find(type.stem_key); it != corpus_contexts->end()) {
        counts.after_verb_marker += it->second.after_verb_marker;
        counts.after_noun_marker += it->second.after_noun_marker;
      }
    }
    if (counts.after_verb_marker >= kVerbMinimumEvidence &&
        counts.after_verb_marker > kVerbEvidenceRatio * counts.after_noun_marker) {
      type.in_phrases = false;
    }
  }
}

Analysis Analyse(std::string_view text, const Stemmer& stemmer,
                 const std::unordered_map<uint64_t, ContextCounts>* corpus_contexts = nullptr) {
  Analysis analysis;
  Tokenise(text, stemmer, &analysis);
  ExcludeVerbs(corpus_contexts, &analysis);
  std::unordered_map<uint64_t, uint32_t> candidate_index;
  ForEachCandidateOccurrence(analysis, [&](size_t first, size_t n, uint64_t key, RunPlace place) {
    auto [it, inserted] = candidate_index.try_emplace(key, analysis.candidates.size());
    if (inserted) {
      Candidate candidate;
      candidate.key = key;
      candidate.first_token = static_cast<uint32_t>(first);
      candidate.length = static_cast<uint32_t>(n);
      candidate.first_sentence = analysis.tokens[first].sentence;
      analysis.candidates.push_back(candidate);
    }
    Candidate& candidate = analysis.candidates[it->second];
    ++candidate.count;
    candidate.whole_runs += place.whole;
    candidate.run_ends += place.at_end;
  });
  return analysis;
}

// ---------------------------------------------------------------------------
// Word scores: a random walk over the co-occurrence graph of stems, biased to stems
// that occur early (PositionRank), times the stem's rarity in the corpus.

// `word_documents` (document frequencies by stem key over `document_count` documents)
// may be null: then every word is taken as equally rare.
std::vector<double> WordScores(const Analysis& analysis,
                               const std::unordered_map<uint64_t, uint32_t>* word_documents,
                               size_t document_count) {
  const size_t nodes = analysis.stem_count;
  std::vector<double> scores(nodes, 0.0);
  if (nodes == 0) return scores;

  // The sequence of phrase words, as stem indexes; the position bias.
  std::vector<uint32_t> sequence;
  std::vector<double> bias(nodes, 0.0);
  std::vector<uint64_t> stem_keys(nodes, 0);
  for (const Token& token : analysis.tokens) {
    const WordType& type = analysis.words[token.word];
    if (!type.in_phrases) continue;
    sequence.push_back(type.stem_index);
    bias[type.stem_index] += 1.0 / static_cast<double>(sequence.size());
    stem_keys[type.stem_index] = type.stem_key;
  }

  // Undirected edges weighted by co-occurrences within the window.
  std::unordered_map<uint64_t, double> edge_weights;
  for (size_t i = 0; i < sequence.size(); ++i) {
    for (size_t j = i + 1; j < sequence.size() && j < i + kCooccurrenceWindow; ++j) {
      uint32_t a = sequence[i];
      uint32_t b = sequence[j];
      if (a == b) continue;
      if (a > b) std::swap(a, b);
      edge_weights[(uint64_t{a} << 32) | b] += 1.0;
    }
  }
  // Adjacency lists, sorted so that sums run in one order on every machine.
  std::vector<std::vector<std::pair<uint32_t, double>>> neighbours(nodes);
  std::vector<double> strength(nodes, 0.0);
  for (const auto& [edge, weight] : edge_weights) {
    const auto a = static_cast<uint32_t>(edge >> 32);
    const auto b = static_cast<uint32_t>(edge & 0xFFFFFFFFu);
    neighbours[a].emplace_back(b, weight);
    neighbours[b].emplace_back(a, weight);
    strength[a] += weight;
    strength[b] += weight;
  }
  for (auto& list : neighbours) std::sort(list.begin(), list.end());
  double bias_sum = 0;
  for (double b : bias) bias_sum += b;
  if (bias_sum == 0) return scores;  // no word may be in a phrase
  for (double& b : bias) b /= bias_sum;

  std::vector<double> rank = bias;
  std::vector<double> next(nodes);
  for (int iteration = 0; iteration < kMaxPageRankIterations; ++iteration) {
    double dangling = 0;
    for (size_t v = 0; v < nodes; ++v) {
      if (strength[v] == 0) dangling += rank[v];
    }
    double change = 0;
    for (size_t v = 0; v < nodes; ++v) {
      double in = 0;
      for (const auto& [u, weight] : neighbours[v]) in += rank[u] * weight / strength[u];
      next[v] = (1 - kDamping) * bias[v] + kDamping * (in + dangling * bias[v]);
      change += std::fabs(next[v] - rank[v]);
    }
    rank.swap(next);
    if (change < 1e-9) break;
  }

  for (size_t v = 0; v < nodes; ++v) {
    double idf = 1.0;
    if (word_documents != nullptr && document_count > 0) {
      auto it = word_documents->find(stem_keys[v]);
      const double df = it == word_documents->end() ? 0 : it->second;
      idf = std::log((document_count + 1.0) / (df + 1.0)) + 1.0;
    }
    scores[v] = rank[v] * static_cast<double>(nodes) * std::pow(idf, kIdfExponent);
  }
  return scores;
}

// The written form of one occurrence: its words joined by single spaces, the first
// lowercased when its capital only marks a sentence start.
std::string SurfaceForm(std::string_view text, const Analysis& analysis, size_t first,
                        size_t length) {
  std::string form;
  for (size_t i = first; i < first + length; ++i) {
    const Token& token = analysis.tokens[i];
    std::string_view word = text.substr(token.begin, token.length);
    if (i > first) form.push_back(' ');
    const size_t start = form.size();
    form.append(word);
    const bool rest_lower = std::none_of(word.begin() + 1, word.end(), IsAsciiUpper);
    if (token.sentence_start && IsAsciiUpper(word.front()) && rest_lower &&
        !analysis.words[token.word].capitalised_inside_sentence) {
      form[start] = static_cast<char>(form[start] - 'A' + 'a');
    }
  }
  return form;
}

// Fingerprints of the stem sequences of every domain vocabulary form, sorted.
std::vector<uint64_t> VocabularyKeys(const Stemmer& stemmer) {
  std::vector<uint64_t> keys;
  for (const Concept& concept_entry : DomainVocabulary()) {
    for (std::string_view form : concept_entry.forms) {
      Analysis analysis;
      Tokenise(form, stemmer, &analysis);
      uint64_t key = 0;
      for (size_t i = 0; i < analysis.tokens.size(); ++i) {
        const WordType& type = analysis.words[analysis.tokens[i].word];
        key = i == 0 ? type.stem_key : ExtendKey(key, type.stem);
      }
      if (!analysis.tokens.empty()) keys.push_back(key);
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// True when some contiguous part of the candidate's words is a vocabulary form.
bool ContainsVocabularyTerm(const Analysis& analysis, const Candidate& candidate,
                            const std::vector<uint64_t>& vocabulary) {
  for (size_t first = 0; first < candidate.length; ++first) {
    uint64_t key = 0;
    for (size_t i = first; i < candidate.length; ++i) {
      const WordType& type = analysis.words[analysis.tokens[candidate.first_token + i].word];
      key = i == first ? type.stem_key : ExtendKey(key, type.stem);
      if (std::binary_search(vocabulary.begin(), vocabulary.end(), key)) return true;
    }
  }
  return false;
}

// True when the stems of `part` occur, in order and contiguous, among those of `whole`.
bool IsPartOf(const Analysis& analysis, const Candidate& part, const Candidate& whole) {
  if (part.length >= whole.length) return false;
  for (size_t offset = 0; offset + part.length <= whole.length; ++offset) {
    bool same = true;
    for (size_t i = 0; i < part.length && same; ++i) {
      same = analysis.words[analysis.tokens[part.first_token + i].word].stem ==
             analysis.words[analysis.tokens[whole.first_token + offset + i].word].stem;
    }
    if (same) return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------

Result<PhraseStatistics> PhraseStatistics::Create() {
  SCISEARCH_ASSIGN_OR_RETURN(Stemmer stemmer, Stemmer::English());
  return PhraseStatistics(std::move(stemmer));
}

void PhraseStatistics::Add(std::string_view text) {
  ++document_count_;
  const Analysis analysis = Analyse(text, stemmer_);
  std::unordered_set<uint64_t> stems;
  for (const WordType& type : analysis.words) stems.insert(type.stem_key);
  for (uint64_t key : stems) ++word_documents_[key];
  for (const Candidate& candidate : analysis.candidates) ++phrase_documents_[candidate.key];
  for (const auto& [key, counts] : analysis.contexts) {
    ContextCounts& total = word_contexts_[key];
    total.after_verb_marker += counts.after_verb_marker;
    total.after_noun_marker += counts.after_noun_marker;
  }
}

size_t PhraseStatistics::Frequency(const std::unordered_map<uint64_t, uint32_t>& table,
                                   uint64_t key) const {
  auto it = table.find(key);
  return it == table.end() ? 0 : it->second;
}

size_t PhraseStatistics::WordDocumentFrequency(std::string_view word) const {
  const Analysis analysis = Analyse(word, stemmer_);
  if (analysis.tokens.size() != 1) return 0;
  return Frequency(word_documents_, analysis.words[analysis.tokens[0].word].stem_key);
}

size_t PhraseStatistics::PhraseDocumentFrequency(std::string_view phrase) const {
  Analysis analysis;
  Tokenise(phrase, stemmer_, &analysis);
  if (analysis.tokens.empty()) return 0;
  uint64_t key = 0;
  for (size_t i = 0; i < analysis.tokens.size(); ++i) {
    const WordType& type = analysis.words[analysis.tokens[i].word];
    key = i == 0 ? type.stem_key : ExtendKey(key, type.stem);
  }
  return Frequency(phrase_documents_, key);
}

Result<KeyphraseExtractor> KeyphraseExtractor::Create() {
  SCISEARCH_ASSIGN_OR_RETURN(Stemmer stemmer, Stemmer::English());
  std::vector<uint64_t> vocabulary = VocabularyKeys(stemmer);
  return KeyphraseExtractor(std::move(stemmer), std::move(vocabulary));
}

std::vector<Keyphrase> KeyphraseExtractor::Extract(std::string_view text,
                                                   const PhraseStatistics* corpus,
                                                   size_t top) const {
  std::vector<Keyphrase> keyphrases;
  if (top == 0) return keyphrases;
  Analysis analysis = Analyse(text, stemmer_, corpus ? &corpus->word_contexts_ : nullptr);
  if (analysis.candidates.empty()) return keyphrases;

  const std::vector<double> word_scores = WordScores(
      analysis, corpus ? &corpus->word_documents_ : nullptr, corpus ? corpus->document_count_ : 0);

  const double document_count = corpus ? static_cast<double>(corpus->document_count_) : 0;
  for (Candidate& candidate : analysis.candidates) {
    // SingleRank: the sum of the word scores, so that longer phrases of good words win.
    double score = 0;
    for (size_t i = 0; i < candidate.length; ++i) {
      const WordType& type = analysis.words[analysis.tokens[candidate.first_token + i].word];
      score += word_scores[type.stem_index];
    }
    if (candidate.length == 1) score *= kSingleWordFactor;
    // TF-IDF of the phrase itself: a phrase many documents use is a stock phrase.
    if (document_count > 0) {
      auto it = corpus->phrase_documents_.find(candidate.key);
      const double df = it == corpus->phrase_documents_.end() ? 0 : it->second;
      score *= std::log((document_count + 1.0) / (df + 1.0)) + 1.0;
    }
    score *= 1.0 + kFrequencyWeight * std::log(candidate.count);
    if (candidate.first_sentence == 0) score *= 1.0 + kFirstSentenceBonus;
    score *= 1.0 + kPositionWeight * (1.0 - static_cast<double>(candidate.first_token) /
                                                static_cast<double>(analysis.tokens.size()));
    if (ContainsVocabularyTerm(analysis, candidate, vocabulary_)) score *= kVocabularyBonus;
    if (candidate.length > 1) {
      const double count = candidate.count;
      score *= 1.0 + kWholeRunWeight * candidate.whole_runs / count;
      score *= 1.0 + kRunEndWeight * candidate.run_ends / count;
    }
    candidate.score = score;
  }
  // Best first; ties by first occurrence, so the order is the same everywhere.
  std::vector<uint32_t> order(analysis.candidates.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return analysis.candidates[a].score > analysis.candidates[b].score;
  });

  std::vector<uint32_t> chosen;
  for (uint32_t index : order) {
    if (chosen.size() == top) break;
    const Candidate& candidate = analysis.candidates[index];
    bool redundant = false;
    for (uint32_t better : chosen) {
      const Candidate& other = analysis.candidates[better];
      if (candidate.count <= other.count && IsPartOf(analysis, candidate, other)) {
        redundant = true;
        break;
      }
    }
    if (!redundant) chosen.push_back(index);
  }

  // The most frequent written form of each chosen phrase (ties: the first written).
  std::unordered_map<uint64_t, size_t> slot;
  for (size_t i = 0; i < chosen.size(); ++i) slot[analysis.candidates[chosen[i]].key] = i;
  std::vector<std::vector<std::pair<std::string, uint32_t>>> forms(chosen.size());
  ForEachCandidateOccurrence(analysis, [&](size_t first, size_t n, uint64_t key, RunPlace) {
    auto it = slot.find(key);
    if (it == slot.end()) return;
    std::string form = SurfaceForm(text, analysis, first, n);
    auto& list = forms[it->second];
    auto same = std::find_if(list.begin(), list.end(),
                             [&](const auto& entry) { return entry.first == form; });
    if (same == list.end()) {
      list.emplace_back(std::move(form), 1);
    } else {
      ++same->second;
    }
  });
  for (size_t i = 0; i < chosen.size(); ++i) {
    const auto& list = forms[i];
    const auto best = std::max_element(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;  // max_element keeps the first of equals
    });
    keyphrases.push_back({best->first, analysis.candidates[chosen[i]].score});
  }
  return keyphrases;
}

}  // namespace scisearch::nlp
