"""Asking a meeting a question: find the moments that bear on it, let VideoDB's model answer
from those alone, check what it cites, store the answer and show it on every open page.

Retrieval: the keyword search over the session's stored record (the question's content
words, any of them: a partial match still finds a line), and VideoDB's search by meaning of
the session's streams (``history.meaning``, under its own deadline; never required), merged
and mapped onto the record's moments (``intelligence.sources``). The best ``MAX_HITS`` are
sent with their neighbours for context, at most ``MAX_LINES`` lines, numbered. When nothing
is found the answer is "Not discussed" and the model is not asked.

The answer is checked, not trusted (``answers.check_answer``): only numbers that were sent
count as evidence, and an answer left without evidence, or one the model says the lines do
not give, is stored as "Not discussed", never shown as an answer. VideoDB failing, not
answering within ``ASK_DEADLINE_SECONDS``, or answering something other than the JSON asked
for stores the question as failed with the reason. The question is stored before VideoDB is
asked, so it is never lost.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sessions_app import gateway
from sessions_app.history import deadline, meaning, record, search, search_text
from sessions_app.intelligence import answers, sources
from sessions_app.live import broadcast, ingest
from sessions_app.models import CaptureSession, Question, SearchEntry, ShareLink, User
from sessions_app.viewers.access import Asker

logger = logging.getLogger(__name__)

PROMPT_VERSION = "ask-1"
MAX_HITS = 6  # moments retrieved for the question …
MAX_LINES = 12  # … and sent, with their neighbours
NEIGHBOUR_MS = 30_000  # a moment this close before or after a hit is its context
MAX_WORDS = 16  # content words searched for
KEYWORD_CANDIDATES = 200  # keyword matches ranked (newest first when there are more)
NOT_DISCUSSED = "Not discussed in this meeting."
RATE_WINDOW = timedelta(minutes=1)

# Words that say how a question is asked, not what about ("was the price discussed?").
_ASKING_WORDS = frozenset(
    search_text.stem(word)
    for word in (
        *("discuss", "mention", "talk", "meeting", "said", "say", "tell", "told"),
        *("anyone", "anybody", "anything", "someone", "somebody", "something"),
    )
)
# Search entries that are moments of the record (brief items are searchable too, but they
# are what the model makes, not what the meeting said).
_MOMENT_KINDS = (
    SearchEntry.Kind.SPEECH,
    SearchEntry.Kind.VISUAL,
    SearchEntry.Kind.AUDIO,
    SearchEntry.Kind.ALERT,
)
_EVIDENCE_KIND = {
    SearchEntry.Kind.SPEECH: sources.TRANSCRIPT,
    SearchEntry.Kind.VISUAL: sources.VISUAL,
    SearchEntry.Kind.AUDIO: sources.AUDIO,
    SearchEntry.Kind.ALERT: sources.ALERT,
}

INSTRUCTIONS = """\
You answer one question about a meeting. The numbered lines below come from its record: \
the time since the meeting started, who spoke (or "screen", "insight", "alert"), and what \
was said or shown. They are all you know about the meeting: use nothing else.
Answer in JSON: {"answer": {"text": "...", "evidence": [2, 5], "discussed": true}}
- "text": a short, plain answer.
- "evidence": the numbers of the lines that support it (at least one).
- When the lines do not answer the question, answer \
{"answer": {"text": "Not discussed", "evidence": [], "discussed": false}}. Never guess."""


class Refused(Exception):
    """The question cannot be taken; ``message`` says why, ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def clean(text: object) -> str:
    """The question as asked, or Refused: empty, or longer than ``Question.MAX_LENGTH``."""
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise Refused("Type a question.", 400)
    if len(text) > Question.MAX_LENGTH:
        raise Refused(
            f"A question is at most {Question.MAX_LENGTH} characters; this one has {len(text)}.",
            400,
        )
    return text


def _check_rate(asker: Asker) -> None:
    """Refused (429) when the asker used up ``ASK_PER_MINUTE``: a signed-in user counts
    across sessions, a browser without an account per share link. Takes a row lock on the
    user or link, so two requests at once cannot both slip under the limit."""
    since = timezone.now() - RATE_WINDOW
    if asker.user is not None:
        User.objects.select_for_update().filter(pk=asker.user.pk).first()
        recent = Question.objects.filter(asked_by=asker.user, asked_at__gte=since)
    else:
        ShareLink.objects.select_for_update().filter(pk=asker.link.pk).first()
        recent = Question.objects.filter(
            share_link=asker.link, asked_by__isnull=True, asked_at__gte=since
        )
    count = recent.count()
    if count >= settings.ASK_PER_MINUTE:
        raise Refused(
            f"You asked {count} question{'s' if count != 1 else ''} in the last minute; "
            "wait a moment.",
            429,
        )


def ask(session: CaptureSession, text: object, asker: Asker) -> Question:
    """Take a question (Refused if it cannot be), store it, answer it, and return it. Every
    open page of the session sees it asked, then answered."""
    question_text = clean(text)
    with transaction.atomic():
        _check_rate(asker)
        question = Question.objects.create(
            session=session,
            asked_by=asker.user,
            share_link=asker.link,
            question=question_text,
            prompt_version=PROMPT_VERSION,
            seq=ingest.next_seq(session.pk),
        )
        _publish_on_commit(question)
    return answer(question)


def _publish_on_commit(question: Question) -> None:
    """Show the question as it is now on every open page of its session, once committed.
    Rendered now: each change is pushed as it was made, even when both commit together."""
    update = broadcast.message(question, question.session)
    transaction.on_commit(partial(broadcast.publish, question.session, [update]), robust=True)


# --- retrieval ------------------------------------------------------------------------------


def content_words(text: str) -> list[str]:
    """The words of ``text`` worth searching for: no stop words, none that only say how the
    question is asked, each once, at most MAX_WORDS."""
    words = []
    for word in re.findall(r"[^\W_]+", search_text.fold(search_text.normalize(text))):
        if len(word) < 2 or word in search_text.STOP_WORDS:
            continue
        if search_text.stem(word) in _ASKING_WORDS:
            continue
        words.append(word)
    return list(dict.fromkeys(words))[:MAX_WORDS]


def _keyword_entries(session: CaptureSession, words: list[str]) -> list[SearchEntry]:
    """The session's moments that contain any of ``words``, best first: those sharing more
    of the words, then those sharing rarer ones."""
    if not words:
        return []
    query = search_text.parse(" OR ".join(words))
    entries = list(
        search.matches(query, [session.pk], search.Filters(kinds=_MOMENT_KINDS)).only(
            "kind", "segment", "insight", "alert", "terms", "start_ms"
        )[:KEYWORD_CANDIDATES]
    )
    wanted = {search_text.stem(word) for word in words}
    shared = {entry.pk: wanted & set(entry.terms.split()) for entry in entries}
    frequency = Counter(term for terms in shared.values() for term in terms)

    def rank(entry: SearchEntry) -> tuple[int, float]:
        terms = shared[entry.pk]
        weight = sum(math.log(1 + len(entries) / frequency[term]) for term in terms)
        return len(terms), weight

    return sorted(entries, key=rank, reverse=True)


def _meaning_entries(session: CaptureSession, text: str) -> list[SearchEntry]:
    """VideoDB's moments for ``text`` (by meaning), landed on stored ones, best first. Any
    failure or lateness leaves fewer, or none: keyword hits answer alone then."""
    found = meaning.ask(text, [session.pk], search.Filters(kinds=_MOMENT_KINDS))
    if found.notice:
        logger.info("asking session %s: %s", session.pk, found.notice)
    return [hit.entry for hit in found.hits if hit.entry is not None]


def _evidence_of(entry: SearchEntry) -> tuple[str, int | None]:
    kind = _EVIDENCE_KIND[entry.kind]
    if kind == sources.TRANSCRIPT:
        return kind, entry.segment_id
    if kind == sources.ALERT:
        return kind, entry.alert_id
    return kind, entry.insight_id


@dataclass(frozen=True)
class Retrieved:
    sources: list[sources.Source]  # numbered from 1, in time order
    hits: int  # moments found (before neighbours were added)


def retrieve(session: CaptureSession, text: str) -> Retrieved:
    """The numbered lines to send for the question ``text``."""
    rec = record.load(session)
    moments = sources.moments(rec)
    where: dict[tuple[str, int], int] = {}
    for index, moment in enumerate(moments):
        for pk in moment.ids:
            where[(moment.kind, pk)] = index

    def indexes(entries: list[SearchEntry]) -> list[int]:
        found = (where.get(_evidence_of(entry)) for entry in entries)
        return list(dict.fromkeys(i for i in found if i is not None))

    by_keyword = indexes(_keyword_entries(session, content_words(text)))
    by_meaning = indexes(_meaning_entries(session, text))
    both = [i for i in by_keyword if i in set(by_meaning)]
    ranked = list(dict.fromkeys([*both, *by_keyword, *by_meaning]))[:MAX_HITS]
    chosen = set(ranked)
    for i in ranked:  # the best hits get their context first
        for neighbour in (i - 1, i + 1):
            if len(chosen) >= MAX_LINES:
                break
            if (
                0 <= neighbour < len(moments)
                and abs(moments[neighbour].start_ms - moments[i].start_ms) <= NEIGHBOUR_MS
            ):
                chosen.add(neighbour)
    picked = [moments[i] for i in sorted(chosen)]
    return Retrieved(sources.number(picked, origin_ms=rec.origin_ms), len(ranked))


def prompt(session: CaptureSession, text: str, lines: list[sources.Source]) -> str:
    """The prompt: instructions, the numbered lines, and the question on one line (a
    question cannot add lines of its own)."""
    title = " ".join(session.title.split())
    return (
        f"{INSTRUCTIONS}\n\nMeeting: {title}\n\nLines:\n{sources.render(lines)}\n\n"
        f"Question: {' '.join(text.split())}\n"
    )


# --- answering ------------------------------------------------------------------------------


def answer(question: Question) -> Question:
    """Answer a stored question and store the outcome (see the module's docstring)."""
    session = question.session
    try:
        fields = _answered(session, question.question)
    except Exception:
        # Whatever went wrong, the question must not stay "being answered" for ever.
        logger.exception("could not answer question %s", question.pk)
        fields = _failed("something went wrong on our side; try again.")
    with transaction.atomic():
        fields.update(seq=ingest.next_seq(session.pk), answered_at=timezone.now())
        Question.objects.filter(pk=question.pk).update(**fields)
        for name, value in fields.items():
            setattr(question, name, value)
        _publish_on_commit(question)
    return question


def _failed(reason: str) -> dict[str, object]:
    return {"outcome": Question.Outcome.FAILED, "error": reason, "answer": "", "evidence": []}


def _not_discussed(**fields: object) -> dict[str, object]:
    return {
        "outcome": Question.Outcome.NOT_DISCUSSED,
        "answer": NOT_DISCUSSED,
        "evidence": [],
        "error": "",
        **fields,
    }


def _answered(session: CaptureSession, text: str) -> dict[str, object]:
    retrieved = retrieve(session, text)
    if not retrieved.sources:
        return _not_discussed()
    model = settings.VIDEODB_TEXT_MODEL
    generate = partial(
        gateway.generate_text,
        prompt(session, text, retrieved.sources),
        model_name=model,
        response_type="json",
    )
    (done,) = deadline.call_all([generate], settings.ASK_DEADLINE_SECONDS)
    if done is None:
        return {**_failed("VideoDB did not answer in time."), "model_name": model}
    try:
        generated = done.result()
    except gateway.GatewayError as exc:
        return {**_failed(exc.message), "model_name": model}
    try:
        checked = answers.check_answer(generated.output, sources.by_number(retrieved.sources))
    except answers.AnswerError as exc:
        logger.warning("unusable answer to a question on session %s: %s", session.pk, exc)
        return {
            **_failed(f"VideoDB's answer was not usable ({exc})."),
            "model_name": generated.model_name,
        }
    if checked.dropped_citations:
        logger.info(
            "question on session %s: %d cited number(s) were never sent",
            session.pk,
            checked.dropped_citations,
        )
    if not checked.discussed or not checked.sources or not checked.text:
        return _not_discussed(model_name=generated.model_name)
    return {
        "outcome": Question.Outcome.ANSWERED,
        "answer": checked.text,
        "evidence": [source.evidence.as_json() for source in checked.sources],
        "error": "",
        "model_name": generated.model_name,
    }
