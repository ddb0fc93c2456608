"""Words, queries and highlights: the text side of search, identical on every database.

Neither PostgreSQL's text-search configurations nor SQLite's FTS5 tokenizers are used to
decide what a word is: they disagree (stemmers, stop words, diacritics), and the same query
must find the same moments on both. Instead this module folds, splits and stems text into
``terms`` (space-separated), both databases index those terms as they are, and a query is
parsed here and compiled into each database's syntax from plain alphanumeric tokens, so no
user input ever reaches either query language unquoted.

Query language (what a user may type):
    pricing discount      both words, in any order (words are stemmed: "prices" finds "pricing")
    "annual plan"         the exact phrase
    pric*                 words starting with "pric" (at least 2 letters)
    pricing OR discount   either
    -draft                without "draft"
Everything else (brackets, colons, lone operators, stray quotes) is ignored, never an error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import snowballstemmer
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# A word: letters and digits of any script; underscores split words (as FTS5 does), so an
# alert label such as "pricing_shared" is the two words it reads as.
_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")

# Dropped from a query (not from the index) unless the query has nothing else: "the plan"
# searches "plan", while "to be or not to be" is searched as the phrase it is.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with you your yours yourself
    yourselves""".split()  # noqa: SIM905 -- a word list reads better as prose
)

MAX_QUERY_CHARS = 1000
MAX_CLAUSES = 32
# Excluded words nest one level each in FTS5's expression (its parser overflows past ~100),
# and alternatives of one clause widen it: both are capped, and the page says so.
MAX_EXCLUDED = 16
MAX_ALTERNATIVES = 16
MIN_PREFIX = 2


@lru_cache(maxsize=200_000)  # words repeat: every snippet of a search page folds its words again
def fold(word: str) -> str:
    """Case- and accent-insensitive form: "Café" and "CAFE" are the same word."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(folded word, start, end) for each word of NFC ``text``; spans index into that text."""
    for match in _WORD.finditer(text):
        for word in _WORD.findall(fold(match.group())):
            yield word, match.start(), match.end()


def normalize(text: str) -> str:
    """The text as its display form: NFC, so that spans found in it are spans shown."""
    return unicodedata.normalize("NFC", text)


def terms(text: str) -> str:
    """What the index stores for ``text``: its stemmed words, in order, space-separated."""
    return " ".join(stem(word) for word, _, _ in _tokens(normalize(text)))


# --- queries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """One thing a moment may contain: a word, a word prefix, or a phrase (several words)."""

    kind: str  # "word" | "prefix" | "phrase"
    tokens: tuple[str, ...]

    def matches(self, words: list[str], index: int) -> int:
        """How many words of ``words`` match starting at ``index`` (0: no match)."""
        if self.kind == "prefix":
            return 1 if words[index].startswith(self.tokens[0]) else 0
        n = len(self.tokens)
        return n if tuple(words[index : index + n]) == self.tokens else 0


@dataclass(frozen=True)
class Query:
    """A parsed query: every clause must match (each clause: any of its alternatives), and
    no excluded match may. ``notes`` tell the user what was changed or ignored."""

    clauses: tuple[tuple[Match, ...], ...] = ()
    excluded: tuple[Match, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        return not self.clauses

    @property
    def has_prefix(self) -> bool:
        return any(m.kind == "prefix" for m in [*self.all_matches(), *self.excluded])

    def all_matches(self) -> list[Match]:
        return [m for clause in self.clauses for m in clause]

    @staticmethod
    def scope_tsquery(session_ids: list[int]) -> str:
        """PostgreSQL tsquery text (for a ``::tsquery`` cast, no parser) for "in one of
        these sessions": the "_s<id>" lexemes of the search vector."""
        return " | ".join(f"'_s{int(pk)}'" for pk in session_ids) or "'_s0'"

    def to_tsquery(self) -> str:
        """PostgreSQL ``to_tsquery('simple', …)`` text. Tokens are alphanumeric only."""

        def one(m: Match) -> str:
            if m.kind == "prefix":
                return f"'{m.tokens[0]}':*"
            return "(" + " <-> ".join(f"'{t}'" for t in m.tokens) + ")"

        parts = ["(" + " | ".join(one(m) for m in clause) + ")" for clause in self.clauses]
        parts += [f"!{one(m)}" for m in self.excluded]
        return " & ".join(parts)

    def cuts_prefix(self, longest: int) -> bool:
        """Whether :meth:`to_fts5` with ``longest_prefix=longest`` looks for more than this
        query: a prefix it looks for is longer."""
        return any(m.kind == "prefix" and len(m.tokens[0]) > longest for m in self.all_matches())

    def to_fts5(
        self, session_ids: list[int] | None = None, *, longest_prefix: int | None = None
    ) -> str:
        """SQLite FTS5 ``MATCH`` text, within the given sessions (the FTS table's ``scope``
        column). Every token is double-quoted, so none is an operator. ``longest_prefix``
        cuts a prefix looked for to that many letters (an excluded one is kept whole): the
        expression then finds more than the query (:meth:`cuts_prefix`), which the caller
        narrows with :meth:`to_sqlite_row`."""

        def one(m: Match, *, cut: bool = False) -> str:
            if m.kind == "prefix":
                token = m.tokens[0][:longest_prefix] if cut and longest_prefix else m.tokens[0]
                return f'"{token}"*'
            return '"' + " ".join(m.tokens) + '"'

        expression = " AND ".join(
            "(" + " OR ".join(one(m, cut=True) for m in clause) + ")" for clause in self.clauses
        )
        for m in self.excluded:
            expression = f"({expression}) NOT {one(m)}"
        expression = f"terms : ({expression})"
        if session_ids is not None:
            # No session at all is "s0", which no row has (ids start at 1): FTS5 has no
            # empty OR.
            scope = " OR ".join(f'"s{int(pk)}"' for pk in session_ids) or '"s0"'
            expression = f"scope : ({scope}) AND {expression}"
        return expression

    def to_sqlite_row(self, column: str) -> tuple[str, list[str]]:
        """SQLite SQL (and its parameters) testing one row's ``column`` of terms itself, the
        FTS5 index unused: the same test as :meth:`to_fts5`, since terms are tokens joined by
        single spaces and FTS5 splits them at those spaces. A word or phrase is a substring
        " tok tok " of " terms ", a prefix a substring " tok" of " terms"."""
        params: list[str] = []

        def one(m: Match) -> str:
            if m.kind == "prefix":
                params.append(f" {m.tokens[0]}")
                return f"instr(' ' || {column}, %s) > 0"
            params.append(" " + " ".join(m.tokens) + " ")
            return f"instr(' ' || {column} || ' ', %s) > 0"

        parts = ["(" + " OR ".join(one(m) for m in clause) + ")" for clause in self.clauses]
        parts += [f"NOT {one(m)}" for m in self.excluded]
        return "(" + " AND ".join(parts) + ")", params


# A quoted phrase (the closing quote may be missing), or a run of anything but space.
_PIECE = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def _prefix_token(word: str) -> str:
    """The index holds stems, so a prefix must be a prefix of the stem too: "pricing*" looks
    for "pric", which starts both "price" (the stem of "pricing") and "pricey"."""
    stemmed = stem(word)
    common = 0
    for a, b in zip(word, stemmed, strict=False):
        if a != b:
            break
        common += 1
    return word[: max(common, MIN_PREFIX)] if common < len(word) else word


def _piece_matches(raw: str, *, quoted: bool) -> tuple[Match | None, bool]:
    """The Match for one piece of a query and whether it is only a stop word."""
    words = [w for w, _, _ in _tokens(normalize(raw))]
    if not words:
        return None, False
    if quoted or len(words) > 1:  # "e-mail", "3.5" and quotes are phrases of their words
        return Match("phrase", tuple(stem(w) for w in words[:MAX_CLAUSES])), False
    word = words[0]
    if raw.endswith("*") and len(word) >= MIN_PREFIX:
        return Match("prefix", (_prefix_token(word),)), False
    return Match("word", (stem(word),)), word in STOP_WORDS


def parse(text: str) -> Query:
    """Parse what a user typed. Never raises: anything unusable is ignored with a note."""
    notes: list[str] = []
    text = text or ""
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        notes.append(f"Only the first {MAX_QUERY_CHARS} characters were searched.")
    clauses: list[list[tuple[Match, bool]]] = []
    excluded: list[Match] = []
    stop_words: list[str] = []
    join_next = False
    for found in _PIECE.finditer(text):
        negated, phrase, plain = found.group(1), found.group(2), found.group(3)
        if plain == "OR":
            join_next = bool(clauses)
            continue
        if plain is not None and plain.startswith("-") and len(plain) > 1:
            negated, plain = "-", plain[1:]
        match, is_stop = _piece_matches(
            phrase if phrase is not None else plain, quoted=phrase is not None
        )
        if match is None:
            join_next = False
            continue
        if negated:
            excluded.append(match)
            join_next = False
            continue
        if is_stop:
            stop_words.append(match.tokens[0])
        if join_next:
            clauses[-1].append((match, is_stop))
        else:
            clauses.append([(match, is_stop)])
        join_next = False
    kept = [[m for m, stop in clause] for clause in clauses if not all(s for _, s in clause)]
    if not kept and clauses:
        # Only common words: search them as the phrase they were typed as.
        words = tuple(m.tokens[0] for clause in clauses for m, _ in clause)[:MAX_CLAUSES]
        kept = [[Match("phrase", words)]]
    elif stop_words and kept:
        notes.append("Common words were left out: " + ", ".join(dict.fromkeys(stop_words)) + ".")
    if len(kept) > MAX_CLAUSES:
        kept = kept[:MAX_CLAUSES]
        notes.append(f"Only the first {MAX_CLAUSES} words were searched.")
    if any(len(clause) > MAX_ALTERNATIVES for clause in kept):
        kept = [clause[:MAX_ALTERNATIVES] for clause in kept]
        notes.append(f"Only the first {MAX_ALTERNATIVES} words joined by OR were searched.")
    excluded = list(dict.fromkeys(excluded))
    if len(excluded) > MAX_EXCLUDED:
        excluded = excluded[:MAX_EXCLUDED]
        notes.append(f"Only the first {MAX_EXCLUDED} excluded words were used.")
    if not kept and excluded:
        notes.append("Add a word to look for: a query cannot only exclude words.")
        excluded = []
    return Query(
        clauses=tuple(tuple(dict.fromkeys(c)) for c in kept),
        excluded=tuple(dict.fromkeys(excluded)),
        notes=tuple(notes),
    )


# --- highlights -----------------------------------------------------------------------------


def _marked_spans(text: str, query: Query) -> tuple[list[tuple[int, int]], list[int]]:
    """Spans of ``text`` that some match of ``query`` covers, and the word start offsets."""
    tokens = list(_tokens(text))
    words = [stem(w) for w, _, _ in tokens]
    raw = [w for w, _, _ in tokens]
    spans: list[tuple[int, int]] = []
    for i in range(len(tokens)):
        for m in query.all_matches():
            n = m.matches(raw if m.kind == "prefix" else words, i)
            if m.kind == "prefix" and not n:
                n = m.matches(words, i)
            if n:
                spans.append((tokens[i][1], tokens[i + n - 1][2]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged, [t[1] for t in tokens]


def highlight(text: str, query: Query, *, context_words: int = 14) -> SafeString:
    """``text`` escaped, with what ``query`` matched in <mark>, cut to a window of words
    around the first match (with an ellipsis where it was cut)."""
    text = normalize(text)
    spans, starts = _marked_spans(text, query)
    begin, end = 0, len(text)
    if spans and len(starts) > 2 * context_words:
        first = spans[0][0]
        before = [s for s in starts if s < first]
        if len(before) > context_words // 2:
            begin = before[-(context_words // 2)]
        after = [s for s in starts if s > first]
        if len(after) > context_words:
            end = after[context_words]
    elif not spans and len(starts) > 2 * context_words:
        end = starts[2 * context_words]
    out: list[str] = ["… " if begin else ""]
    cursor = begin
    for start, stop in spans:
        if stop <= begin or start >= end:
            continue
        start, stop = max(start, begin), min(stop, end)
        out.append(escape(text[cursor:start]))
        out.append(f"<mark>{escape(text[start:stop])}</mark>")
        cursor = stop
    out.append(escape(text[cursor:end].rstrip()))
    if end < len(text):
        out.append(" …")
    return mark_safe("".join(out))  # noqa: S308 -- every piece of text above is escaped
