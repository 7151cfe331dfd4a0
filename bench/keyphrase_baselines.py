#!/usr/bin/env python3
"""Reference keyphrase extractors, re-implemented from their papers, to measure
scisearch's extractor against under one protocol (../shared/tools/eval_keyphrase.py).

usage: keyphrase_baselines.py {yake,textrank,topicrank} DOCS.jsonl [--top N]
  DOCS.jsonl: one {"id", "text"} per line (other fields ignored).
  Prints one {"id", "keyphrases": [ranked, best first]} per line (N, default 10).

Standard library only (Python 3.9+). Stemming, where a method needs it, goes through
Snowball's "english" stemmer in Debian's libstemmer (ctypes), the stemmer scisearch
itself uses, so no method gains or loses by its stemmer.

  YAKE       Campos, Mangaravite, Pasquali, Jorge, Nunes, Jatowt. "YAKE! Keyword
             extraction from single documents using multiple local features".
             Information Sciences 509 (2020) 257-289. Section numbers below are that
             paper's; default parameters as in the paper and LIAAD/yake (n = 3,
             window w = 1, deduplication threshold 0.9 on the Levenshtein ratio).
             Check: on the Kaggle example of the LIAAD/yake README this gives the
             README's top 20, in its order.
  TextRank   Mihalcea, Tarau. "TextRank: Bringing Order into Texts". EMNLP 2004.
             Section 2 (ranking), Section 3 (keyword extraction: window N = 2, nouns
             and adjectives, T = |V| / 3, adjacent keywords collapsed).
  TopicRank  Bougouin, Boudin, Daille. "TopicRank: Graph-Based Topic Ranking for
             Keyphrase Extraction". IJCNLP 2013. Section 3.1 (candidates, topics by
             HAC with average linkage at 25% stem overlap), 3.2 (complete topic graph
             weighted by offset distances, lambda = 0.85), 3.3 (first-occurring
             candidate of each topic).

No part-of-speech tagger is available (no pip, no network), so TextRank's and
TopicRank's "nouns and adjectives" are approximated by every word that is not a
function word, a frequent verb form, a number or an -ly adverb (NOUN_ADJ_FILTER
below). A real tagger would also drop rarer verbs; this approximation therefore keeps
a few more words than the papers' filter did. YAKE needs no tagger (Section 3.1).
"""
import ctypes
import ctypes.util
import json
import math
import re
import sys
from collections import defaultdict

# ---------------------------------------------------------------------------
# Word lists.

# Function words (a SMART-style English stop list): pronouns, determiners,
# prepositions, conjunctions, auxiliaries, quantifiers and frequent adverbs. YAKE uses
# such a list as its only language resource (Section 3.1); the graph methods use it as
# the core of their noun/adjective filter.
FUNCTION_WORDS = set("""
a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anyhow anyone anything anyway anywhere
are around as at be became because become becomes becoming been before beforehand behind
being below beside besides between beyond both but by can cannot could did do does doing
done down during each either else elsewhere enough etc even ever every everyone everything
everywhere except few for former formerly from further furthermore had has have having he
hence her here hereafter hereby herein hereupon hers herself him himself his how however i
ie eg if in indeed into is it its itself just last latter latterly least less many may me
meanwhile might mine more moreover most mostly much must my myself namely neither never
nevertheless next no nobody none noone nor not nothing now nowhere of off often on once one
only onto or other others otherwise our ours ourselves out over own per perhaps rather
same seem seemed seeming seems several she should since so some somehow someone something
sometime sometimes somewhere still such than that the their theirs them themselves then
thence there thereafter thereby therefore therein thereupon these they this those though
through throughout thru thus to together too toward towards under unless until up upon us
very via was we well were what whatever when whence whenever where whereafter whereas
whereby wherein whereupon wherever whether which while whither who whoever whole whom whose
why will with within without would yet you your yours yourself yourselves
two three four five six seven eight nine ten hundred thousand first second third
et al i.e e.g vs versus let like unlike s t despite million billion
can't cannot won't don't doesn't didn't isn't aren't wasn't weren't hasn't haven't hadn't
couldn't wouldn't shouldn't it's that's there's let's
""".split())

# Frequent verb forms of (academic) English. A tagger would mark these VB*; the graph
# methods keep nouns and adjectives only (TextRank Section 3, TopicRank Section 3.1).
VERB_FORMS = set("""
is are was were be been being am has have had having do does did doing done
present presents presented presenting propose proposes proposed proposing
describe describes described describing show shows showed shown showing
discuss discusses discussed discussing allow allows allowed allowing
provide provides provided providing give gives gave given giving make makes made making
require requires required requiring obtain obtains obtained obtaining
consider considers considered considering introduce introduces introduced introducing
develop develops developed achieve achieves achieved achieving
demonstrate demonstrates demonstrated investigate investigates investigated
examine examines examined compare compares compared comparing
apply applies applied find finds found include includes included including
improve improves improved reduce reduces reduced perform performs performed
derive derives derived establish establishes established evaluate evaluates evaluated
suggest suggests suggested illustrate illustrates illustrated report reports reported
enable enables enabled exist exists existed appear appears appeared
remain remains remained contain contains contained involve involves involved
lead leads led take takes took taken get gets got yield yields yielded
deal deals dealt focus focuses focused need needs needed aim aims aimed
try tries tried say says said see sees seen saw know knows knew known
become becomes became use uses used using based called
explain explains explained solve solves solved study studies studied
determine determines determined produce produces produced generate generates generated
define defines defined increase increases increased decrease decreases decreased
offer offers offered represent represents represented indicate indicates indicated
employ employs employed adopt adopts adopted exhibit exhibits exhibited
implement implements implemented carry carried carries according regarding concerning
""".split())

# Words ending in -ly that are not adverbs.
NOT_ADVERBS = set("""
assembly family supply anomaly monopoly butterfly italy reply ally rally jelly belly
bully lily folly oligopoly homily duopoly panoply july apply multiply disassembly
""".split())


def is_function_word(lower):
    return lower in FUNCTION_WORDS


def NOUN_ADJ_FILTER(lower):  # noqa: N802 (a named stand-in for a POS filter)
    """True when `lower` (a lowercase word) passes the noun/adjective approximation."""
    if lower in FUNCTION_WORDS or lower in VERB_FORMS:
        return False
    if not re.search(r'[a-z]', lower) or len(lower) < 2:
        return False  # numbers, symbols, single letters
    if len(lower) > 4 and lower.endswith('ly') and lower not in NOT_ADVERBS:
        return False  # adverbs
    return True


# ---------------------------------------------------------------------------
# Stemming: Snowball English through libstemmer.

class Stemmer:
    def __init__(self):
        path = ctypes.util.find_library('stemmer') or 'libstemmer.so.0d'
        self._lib = ctypes.CDLL(path)
        self._lib.sb_stemmer_new.restype = ctypes.c_void_p
        self._lib.sb_stemmer_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        self._lib.sb_stemmer_stem.restype = ctypes.POINTER(ctypes.c_ubyte)
        self._lib.sb_stemmer_stem.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib.sb_stemmer_length.restype = ctypes.c_int
        self._lib.sb_stemmer_length.argtypes = [ctypes.c_void_p]
        self._handle = self._lib.sb_stemmer_new(b'english', b'UTF_8')
        if not self._handle:
            raise RuntimeError('libstemmer: cannot create the English stemmer')
        self._cache = {}

    def stem(self, word):
        cached = self._cache.get(word)
        if cached is None:
            data = word.encode('utf-8')
            out = self._lib.sb_stemmer_stem(self._handle, data, len(data))
            n = self._lib.sb_stemmer_length(self._handle)
            cached = bytes(out[:n]).decode('utf-8', 'replace') if out else word
            self._cache[word] = cached
        return cached


# ---------------------------------------------------------------------------
# Tokenisation shared by the three methods.

TOKEN_RE = re.compile(r"\w+(?:[-'\u2019]\w+)*|[^\w\s]", re.UNICODE)
SENTENCE_END_RE = re.compile(r'(?<=[.!?])\s+(?=[^a-z])')


class Token:
    __slots__ = ('text', 'lower', 'sentence', 'chunk', 'position', 'sentence_position')

    def __init__(self, text, sentence, chunk, position, sentence_position):
        self.text = text
        self.lower = text.lower()
        self.sentence = sentence
        self.chunk = chunk
        self.position = position
        self.sentence_position = sentence_position


POSSESSIVE_RE = re.compile(r"['\u2019][sS]$")


def tokenise(text):
    """Word tokens of `text` with sentence index, chunk index (chunks are split by
    punctuation) and word position; punctuation itself is dropped."""
    tokens = []
    chunk = 0
    position = 0
    for sentence_index, sentence in enumerate(s for s in SENTENCE_END_RE.split(text) if s.strip()):
        chunk += 1
        in_sentence = 0
        for match in TOKEN_RE.finditer(sentence):
            word = match.group(0)
            if not re.match(r'\w', word):
                chunk += 1
                continue
            word = POSSESSIVE_RE.sub('', word).replace('\u2019', "'")  # "industry's"
            tokens.append(Token(word, sentence_index, chunk, position, in_sentence))
            position += 1
            in_sentence += 1
    return tokens


def pagerank(nodes, neighbours, weight, damping=0.85, tolerance=1e-4, max_iterations=200):
    """Weighted PageRank on an undirected graph, TextRank's formula (TextRank Section
    2.2, eq. 2; unweighted when every weight is 1): S(v) = (1 - d) + d * sum over
    neighbours u of w(u, v) / (sum of u's weights) * S(u). Iterates until no score
    changes by more than `tolerance` (Section 2: threshold 0.0001)."""
    score = {v: 1.0 for v in nodes}
    strength = {v: sum(weight(v, u) for u in neighbours[v]) for v in nodes}
    for _ in range(max_iterations):
        new = {}
        delta = 0.0
        for v in nodes:
            total = 0.0
            for u in neighbours[v]:
                if strength[u] > 0:
                    total += weight(u, v) / strength[u] * score[u]
            new[v] = (1 - damping) + damping * total
            delta = max(delta, abs(new[v] - score[v]))
        score = new
        if delta < tolerance:
            break
    return score


# ---------------------------------------------------------------------------
# YAKE (Campos et al. 2020).

def levenshtein_ratio(a, b):
    """1 - edit distance / longer length (YAKE Section 3.5, "seqm"/Levenshtein)."""
    if a == b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def yake_tag(word, index_in_sentence):
    """Section 3.1: d = number, u = unparsable (letters mixed with digits, or no
    letter), a = acronym (all capitals), n = capitalised not at a sentence start, p =
    plain."""
    if re.fullmatch(r'[0-9][0-9,.]*', word):
        return 'd'
    digits = sum(c.isdigit() for c in word)
    letters = sum(c.isalpha() for c in word)
    if (digits and letters) or (not digits and not letters):
        return 'u'
    if letters and word.isupper() and len(word) > 1:
        return 'a'
    if index_in_sentence > 0 and word[0].isupper() and sum(c.isupper() for c in word) == 1:
        return 'n'
    return 'p'


# YAKE's only resource is a stop list (Section 3.1); its English list (LIAAD/yake,
# StopwordsList/stopwords_en.txt) is a long one that also holds frequent verbs, so it
# gets the verb forms as well as the function words.
YAKE_STOP_WORDS = FUNCTION_WORDS | VERB_FORMS


def yake_term(lower):
    # The reference implementation folds a plural -s (terms longer than 3 letters).
    return lower[:-1] if lower.endswith('s') and len(lower) > 3 else lower


def yake(text, top, max_ngram=3, window=1, dedup_threshold=0.9):
    tokens = tokenise(text)
    if not tokens:
        return []
    sentences = len({t.sentence for t in tokens})
    tf = defaultdict(float)
    tf_acronym = defaultdict(float)
    tf_capital = defaultdict(float)
    term_sentences = defaultdict(set)
    stop = {}
    # Co-occurrence counts within `window` words inside a chunk (Section 3.2.3).
    cooccur = defaultdict(float)
    candidates = {}  # lowercase n-gram -> [surface, terms, count, has_bad_tag]
    chunk_words = []
    current_chunk = None
    for token in tokens:
        if token.chunk != current_chunk:
            chunk_words = []
            current_chunk = token.chunk
        tag = yake_tag(token.text, token.sentence_position)
        term = yake_term(token.lower)
        if term not in stop:
            stripped = re.sub(r"[-'\u2019]", '', term)
            stop[term] = (token.lower in YAKE_STOP_WORDS or term in YAKE_STOP_WORDS or
                          len(stripped) < 3)
        tf[term] += 1
        if tag == 'a':
            tf_acronym[term] += 1
        if tag == 'n':
            tf_capital[term] += 1
        term_sentences[term].add(token.sentence)
        if tag not in 'ud':
            for previous_tag, _, previous_term in chunk_words[-window:]:
                if previous_tag not in 'ud':
                    cooccur[(previous_term, term)] += 1
        # Candidates: every n-gram up to max_ngram ending here, inside the chunk (3.4).
        chunk_words.append((tag, token.text, term))
        for n in range(1, max_ngram + 1):
            if n > len(chunk_words):
                break
            gram = chunk_words[-n:]
            key = ' '.join(w[1].lower() for w in gram)
            entry = candidates.get(key)
            tags = ''.join(w[0] for w in gram)
            if entry is None:
                entry = candidates[key] = [' '.join(w[1] for w in gram), [w[2] for w in gram], 0, True]
            entry[2] += 1
            # Valid when at least one occurrence has no u or d word (reference code).
            if 'u' not in tags and 'd' not in tags:
                entry[3] = False

    # Term features (Section 3.2) and term score (Section 3.3, eq. 6).
    valid_tfs = [tf[t] for t in tf if not stop[t]]
    if not valid_tfs:
        return []
    mean_tf = sum(valid_tfs) / len(valid_tfs)
    std_tf = math.sqrt(sum((x - mean_tf) ** 2 for x in valid_tfs) / len(valid_tfs))
    max_tf = max(tf.values())
    left = defaultdict(lambda: [0, 0.0])   # distinct left neighbours, total left co-occurrences
    right = defaultdict(lambda: [0, 0.0])
    for (a, b), count in cooccur.items():
        right[a][0] += 1
        right[a][1] += count
        left[b][0] += 1
        left[b][1] += count
    score = {}
    for t in tf:
        t_case = max(tf_acronym[t], tf_capital[t]) / (1.0 + math.log(tf[t]))           # 3.2.1
        ordered = sorted(term_sentences[t])
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        t_position = math.log(math.log(3.0 + median))                                  # 3.2.2
        t_frequency = tf[t] / (mean_tf + std_tf)                                       # 3.2.3
        dl = left[t][0] / left[t][1] if left[t][1] else 0.0
        dr = right[t][0] / right[t][1] if right[t][1] else 0.0
        t_relatedness = 1.0 + (dl + dr) * tf[t] / max_tf                               # 3.2.4
        t_sentence = len(term_sentences[t]) / sentences                                # 3.2.5
        score[t] = (t_relatedness * t_position) / (
            t_case + t_frequency / t_relatedness + t_sentence / t_relatedness)

    # Candidate score (Section 3.4, eq. 7), with stop words inside a candidate weighted
    # by the probability of the bigrams around them (the paper's handling of stop words
    # within keywords, as in the reference implementation).
    ranked = []
    for key, (surface, terms, count, invalid) in candidates.items():
        if invalid or stop[terms[0]] or stop[terms[-1]]:
            continue
        product, total = 1.0, 0.0
        for i, t in enumerate(terms):
            if not stop[t]:
                product *= score[t]
                total += score[t]
            else:
                before = cooccur.get((terms[i - 1], t), 0.0) / tf[terms[i - 1]] if i > 0 else 0.0
                after = (cooccur.get((t, terms[i + 1]), 0.0) / tf[terms[i + 1]]
                         if i + 1 < len(terms) else 0.0)
                probability = before * after
                product *= 1 + (1 - probability)
                total -= 1 - probability
        ranked.append((product / ((total + 1) * count), key, surface))
    ranked.sort(key=lambda x: x[0])  # lower is better

    # Deduplication (Section 3.5): skip a candidate too similar to one already kept.
    kept = []
    for _, key, surface in ranked:
        if all(levenshtein_ratio(key, other) <= dedup_threshold for other, _ in kept):
            kept.append((key, surface))
        if len(kept) == top:
            break
    return [surface for _, surface in kept]


# ---------------------------------------------------------------------------
# TextRank (Mihalcea & Tarau 2004).

def textrank(text, top, window=2):
    tokens = tokenise(text)
    # Section 3: the vertices are the words passing the syntactic filter (nouns and
    # adjectives); two are linked when they co-occur within a window of N = 2 words.
    # The paper leaves open whether the window runs over the text or over the filtered
    # words; its Figure 2 links "compatibility" and "systems" across "of", so it runs
    # over the filtered sequence here. (The other reading, pke's, scores lower on
    # inspec-dev under eval_keyphrase.py: F1@10 0.133 against 0.152.) Undirected,
    # unweighted.
    sequence = [t.lower for t in tokens if NOUN_ADJ_FILTER(t.lower)]
    nodes = list(dict.fromkeys(sequence))
    if not nodes:
        return []
    neighbours = defaultdict(set)
    for i, word in enumerate(sequence):
        for j in range(i + 1, min(i + window, len(sequence))):
            if sequence[j] != word:
                neighbours[word].add(sequence[j])
                neighbours[sequence[j]].add(word)
    score = pagerank(nodes, neighbours, lambda u, v: 1.0)
    # Section 3: keep the top T = |V| / 3 words...
    keep_count = max(1, len(nodes) // 3)
    first_seen = {w: i for i, w in enumerate(nodes)}
    order = sorted(nodes, key=lambda w: (-score[w], first_seen[w]))
    keywords = set(order[:keep_count])
    # ...and collapse keywords adjacent in the text into multi-word keywords.
    phrases = {}
    run = []

    def flush():
        if run:
            key = ' '.join(t.lower for t in run)
            if key not in phrases:
                # The paper outputs a set; to rank it we sum the word scores (as pke does).
                phrases[key] = (sum(score[t.lower] for t in run), run[0].position)
        run.clear()

    previous = None
    for token in tokens:
        adjacent = previous is not None and token.chunk == previous.chunk and \
            token.position == previous.position + 1
        if token.lower in keywords and NOUN_ADJ_FILTER(token.lower):
            if run and not adjacent:
                flush()
            run.append(token)
        else:
            flush()
        previous = token
    flush()
    ranked = sorted(phrases.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [key for key, _ in ranked[:top]]


# ---------------------------------------------------------------------------
# TopicRank (Bougouin et al. 2013).

def topicrank(text, top, stemmer, overlap=0.25, damping=0.85):
    tokens = tokenise(text)
    # Section 3.1: candidates are the longest sequences of nouns and adjectives; forms
    # with the same stems are one candidate.
    candidates = {}  # stem tuple -> {'surface', 'positions'}
    run = []

    def flush():
        if run:
            stems = tuple(stemmer.stem(t.lower) for t in run)
            entry = candidates.setdefault(stems, {'surface': ' '.join(t.lower for t in run),
                                                  'positions': []})
            entry['positions'].append(run[0].position)
        run.clear()

    previous = None
    for token in tokens:
        adjacent = previous is not None and token.chunk == previous.chunk
        if NOUN_ADJ_FILTER(token.lower):
            if run and not adjacent:
                flush()
            run.append(token)
        else:
            flush()
        previous = token
    flush()
    keys = list(candidates)
    if not keys:
        return []

    # Section 3.1: hierarchical agglomerative clustering, average linkage; two
    # candidates are similar when at least 25% of their (stemmed) words overlap
    # (overlap over the longer candidate's words, as in the authors' pke).
    stem_sets = [set(k) for k in keys]
    n = len(keys)
    similarity = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            s = len(stem_sets[i] & stem_sets[j]) / max(len(stem_sets[i]), len(stem_sets[j]))
            similarity[i][j] = similarity[j][i] = s
    clusters = [[i] for i in range(n)]
    while len(clusters) > 1:
        best, best_pair = -1.0, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                total = sum(similarity[i][j] for i in clusters[a] for j in clusters[b])
                average = total / (len(clusters[a]) * len(clusters[b]))
                if average > best:
                    best, best_pair = average, (a, b)
        if best < overlap:
            break
        a, b = best_pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]

    # Section 3.2: complete graph of topics; w(ti, tj) = sum over their candidates of
    # dist(ci, cj) = sum over occurrence offsets of 1 / |pi - pj|.
    def dist(ci, cj):
        return sum(1.0 / abs(p - q) for p in candidates[keys[ci]]['positions']
                   for q in candidates[keys[cj]]['positions'] if p != q)

    topics = list(range(len(clusters)))
    weights = {}
    for a in topics:
        for b in topics:
            if a < b:
                w = sum(dist(ci, cj) for ci in clusters[a] for cj in clusters[b])
                weights[(a, b)] = weights[(b, a)] = w
    neighbours = {a: [b for b in topics if b != a] for a in topics}
    score = pagerank(topics, neighbours, lambda u, v: weights[(u, v)], damping=damping)

    # Section 3.3: from each topic, the candidate that occurs first in the document.
    ranked = sorted(topics, key=lambda t: -score[t])
    out = []
    for t in ranked[:top]:
        first = min(clusters[t], key=lambda c: min(candidates[keys[c]]['positions']))
        out.append(candidates[keys[first]]['surface'])
    return out


# ---------------------------------------------------------------------------

def main(argv):
    if len(argv) < 3 or argv[1] not in ('yake', 'textrank', 'topicrank'):
        sys.exit(__doc__)
    method, path = argv[1], argv[2]
    top = 10
    if len(argv) == 5 and argv[3] == '--top':
        top = int(argv[4])
    elif len(argv) != 3:
        sys.exit(__doc__)
    stemmer = Stemmer() if method == 'topicrank' else None
    out = sys.stdout
    with open(path, encoding='utf-8') as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc_id, text = record['id'], record.get('text') or ''
            except (ValueError, KeyError, TypeError) as error:
                sys.exit(f'{path}:{number}: not a {{"id", "text"}} record: {error}')
            if method == 'yake':
                phrases = yake(text, top)
            elif method == 'textrank':
                phrases = textrank(text, top)
            else:
                phrases = topicrank(text, top, stemmer)
            out.write(json.dumps({'id': doc_id, 'keyphrases': phrases}) + '\n')


if __name__ == '__main__':
    main(sys.argv)
