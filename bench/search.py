"""History search benchmark: one user's search over a corpus of 1 M or 5 M transcript lines.

Builds a dedicated bench database (PostgreSQL ``copilot_search_bench``, dropped and re-created,
or a SQLite file under ``var/bench/``), migrates it, and bulk-loads 100 users, 1,000 sessions
(10 per user, spread over a year), 2 audio streams per session and N final transcript
segments spread evenly over the sessions, each with its SearchEntry. The text is
meeting-like (10-20 words a line) drawn from a Zipf-like vocabulary: a few words are in a
large share of the lines, a long tail is rare, some two-word phrases recur, word families
share a prefix (price/pricing/pricey, deploy/deployment, ...), and a few hundred code names
are planted in 4 lines each of the whole corpus.

Every entry is what the app writes: ``terms`` from ``search_text.terms``, ``text`` from
``search_text.normalize``, ``day`` from ``search._day``; a sample is checked against
``search._entry`` after the load. The full-text structures come from migration 0002: on
PostgreSQL the generated ``tsv`` column is computed by COPY itself, and the non-unique
indexes of the two big tables (the GIN index among them) are dropped before the load and
re-created from their own definitions after it; on SQLite the FTS5 triggers fire for every
inserted entry. Then VACUUM ANALYZE (PostgreSQL) or ANALYZE (SQLite).

Measured, for one user at a time (the sessions ``access.viewable`` gives them), per query
type (rare word, common word, "quoted phrase", prefix*, several words, OR and -word), several
words and users, after a warm-up pass, p50 and p95 of:
  search    ``search.search(parse(q), session_ids)``: what the search page runs before it
            answers: the count capped at search.COUNT_CAP, the first page, its snippets.
            The target (issue 15): p95 <= 20 ms for every query type at 5 M lines.
  facets    ``search.facet_counts(parse(q), session_ids)``: every hit counted by kind,
            channel, session and day, which the page loads after its hits (htmx)
  naive     the bare baseline, measured alongside: ``TranscriptSegment.objects.filter(
            session_id__in=ids, text__icontains=word, is_final=True).order_by("-start_ms")
            [:20]`` listed, plus its ``.count()``
and checks that each first page is today's (every match, newest first: ``search.matches``)
and, once both backends ran on the same corpus, that PostgreSQL and SQLite list the same
entry ids (recorded in a JSON file beside the SQLite bench file).

    .venv/bin/python bench/search.py --segments 1000000 --backend both
    .venv/bin/python bench/search.py --segments 5000000 --backend postgres --reuse --explain

``--reuse`` keeps a bench database that already holds the requested corpus (same size, seed,
the migrations it was built with or those plus newer ones, which are applied to it in place,
and a sample of entries still equal to what the app writes) instead of loading it again;
``--explain`` prints the plans of the statements search.search runs for the first query of
each type; ``--drop`` removes the bench database at the end. The output names the search code
it measured (hashes of search.py, search_text.py and the migrations). Needs PostgreSQL for
``--backend postgres`` (BENCH_DATABASE_URL, default below). The SQLite file lives under
COPILOT_VAR_DIR (else var/) in bench/.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Not bench/webhooks.py's copilot_bench: each bench drops and re-creates its own database.
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/copilot_search_bench"
# Under the app's var directory (COPILOT_VAR_DIR, as ./dev sets it), so parallel checkouts or
# sessions with their own var directory do not share one bench file.
DEFAULT_SQLITE = (
    Path(os.environ.get("COPILOT_VAR_DIR") or ROOT / "var") / "bench" / "search-bench.sqlite3"
)
USERS = 100
SESSIONS_PER_USER = 10
SESSIONS = USERS * SESSIONS_PER_USER
CHUNK = 50_000  # segments per load transaction
VERSION = 1  # of the generated corpus: bump when the generator changes, so --reuse reloads
BASE_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: session s starts s * 8 h later
SESSION_GAP_MS = 8 * 3600 * 1000

# --- the corpus ---------------------------------------------------------------------------

# The head of the vocabulary in rank order (rank 1 is the most frequent), stop words and
# meeting words mixed as in speech; "_" joins the recurring two-word phrases.
HEAD = """yeah the we think to and i that so it need a is of you team okay on this for meeting
just customer can update be have with what next week going if like right do follow_up are
project sure they data time in should plan now release know but get make want work about
there not was next_week good people go all really look call at thanks issue back one from will
would sales product also question point then today quarter new let me our my still see
last an action_item or how more demo budget review launch design feedback roadmap deadline
""".split()  # noqa: SIM905 -- a word list reads better as prose
MID = """pricing price prices priced pricey deploy deployment deployed deploying deployments
integrate integration integrations integrated onboarding onboard onboarded schedule scheduled
scheduling schedules analytics analysis analyst analyze next_quarter contract confirm concern
context connect content consider conversation conference configure consistent contact
continue control convert copy cost costs costing support ticket tickets bug bugs fix fixed
fixes server servers client clients account accounts manager managers engineer engineering
marketing legal finance hiring revenue target targets forecast forecasts pipeline lead leads
deal deals renewal renewals discount discounts invoice invoices payment payments migration
migrate migrated database dashboard report reports reporting metric metrics goal goals okr
okrs sprint sprints backlog story stories estimate estimates priority priorities risk risks
blocker blockers dependency dependencies vendor vendors partner partners security audit
compliance policy policies privacy access permission permissions login signup trial trials
annual_plan subscription subscriptions upgrade upgrades downgrade usage storage bandwidth
latency outage outages incident incidents alert alerts monitoring logging testing tests
staging production rollout rollback feature features flag flags experiment experiments
survey surveys interview interviews research user users persona journey funnel conversion
retention customer_churn churn growth acquisition campaign campaigns email emails newsletter
webinar event events booth agenda minutes notes decision decisions owner owners handoff
timeline milestone milestones scope requirement requirements spec specs prototype mockup
wireframe slide slides deck presentation document documents draft drafts approval approve
approved sign contract_review legal_review procurement purchase order orders shipping
delivery warehouse inventory supplier suppliers quality performance speed reliability
availability capacity scale scaling cluster region regions cloud api apis endpoint endpoints
mobile desktop browser extension plugin sdk library framework python javascript kubernetes
docker terraform pipeline_failure build builds release_notes changelog version versions
hotfix patch patches branch merge review_cycle headcount offsite workshop training
café résumé naïve façade déjà coördinate""".split()  # noqa: SIM905


def _pseudo_words(rng: random.Random, count: int, consonants: str, vowels: str) -> list[str]:
    """Pronounceable made-up words: 2-4 consonant-vowel syllables, maybe a final consonant."""
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.randint(2, 4)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        if rng.random() < 0.4:
            word += rng.choice(consonants)
        words.add(word)
    return sorted(words)


def vocabulary(seed: int) -> tuple[list[str], list[int], list[str]]:
    """(words in rank order, Zipf cumulative weights, rare code names)."""
    rng = random.Random(seed)
    # The tail uses single consonants only, so it never starts like "pric", "deploy",
    # "integr", "onboard", "sched" or "con" and prefix queries count only real words.
    tail = _pseudo_words(rng, 40_000, "bdfgklmnprstv", "aeiou")
    rng.shuffle(tail)
    words = [w.replace("_", " ") for w in HEAD + MID] + tail
    weights = [1 / (rank + 2.7) for rank in range(1, len(words) + 1)]  # Zipf-Mandelbrot, s=1
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    # Code names: they alone contain z/x/q, so they are in no other line.
    rare = _pseudo_words(random.Random(seed + 1), 300, "zxqkv", "aeo")
    rare = [w.capitalize() for w in rare if any(c in w for c in "zxq")][:240]
    return words, cumulative, rare


RARE_PER_WORD = 4  # lines per code name in the whole corpus


def session_sizes(segments: int) -> list[int]:
    return [segments // SESSIONS + (1 if s < segments % SESSIONS else 0) for s in range(SESSIONS)]


def generate(segments: int, seed: int, sessions: list[tuple[int, int, int, int]]):
    """Yield lists of rows (segment id, session id, stream id, channel, text, start_ms,
    end_ms, seq, created, day, normalized text, terms), CHUNK rows at a time, in session
    order. ``sessions``: (session id, mic stream id, system audio stream id, start_ms)."""
    from datetime import UTC, datetime

    from sessions_app.history import search, search_text

    words, cumulative, rare = vocabulary(seed)
    rng = random.Random(seed + 2)
    planted: dict[int, str] = {}
    for n, position in enumerate(rng.sample(range(segments), len(rare) * RARE_PER_WORD)):
        planted[position] = rare[n // RARE_PER_WORD]
    rng = random.Random(seed + 3)
    choices, randint, rand = rng.choices, rng.randint, rng.random
    terms, normalize, day_of = search_text.terms, search_text.normalize, search._day
    chunk: list[tuple] = []
    segment_id = 0
    for (session_id, mic, system, start), count in zip(
        sessions, session_sizes(segments), strict=True
    ):
        created = datetime.fromtimestamp(start / 1000, tz=UTC).isoformat(sep=" ")
        day_ms, day = -1, None
        for j in range(count):
            line = choices(words, cum_weights=cumulative, k=randint(10, 20))
            if segment_id in planted:
                line[randint(0, len(line) - 1)] = planted[segment_id]
            if rand() < 0.3:
                at = randint(2, len(line) - 2)
                line[at] += ","
            first = line[0]
            line[0] = first[0].upper() + first[1:]
            text = " ".join(line).replace(" i ", " I ") + ("?" if rand() < 0.15 else ".")
            begin = start + j * 2000 + randint(0, 900)
            if begin // 900_000 != day_ms:  # days change on a quarter hour in every zone
                day_ms, day = begin // 900_000, day_of(begin).isoformat()
            segment_id += 1
            stream, channel = (mic, "mic") if j % 2 == 0 else (system, "system_audio")
            chunk.append(
                (segment_id, session_id, stream, channel, text, begin,
                 begin + randint(1500, 6000), j + 1, created, day, normalize(text),
                 terms(text))
            )  # fmt: skip
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


SEGMENT_COLUMNS = ("id", "session_id", "stream_id", "text", "is_final", "start_ms", "end_ms",
                   "seq", "created_at", "updated_at")  # fmt: skip
ENTRY_COLUMNS = ("id", "session_id", "stream_id", "kind", "segment_id", "insight_id",
                 "alert_id", "brief_item_id", "channel", "start_ms", "end_ms", "day", "text",
                 "terms")  # fmt: skip


def check_columns() -> None:
    """Fail clearly if the models gained a column this loader does not fill."""
    from sessions_app.models import SearchEntry, TranscriptSegment

    for model, columns in ((TranscriptSegment, SEGMENT_COLUMNS), (SearchEntry, ENTRY_COLUMNS)):
        actual = {f.column for f in model._meta.concrete_fields}
        if actual != set(columns):
            raise SystemExit(
                f"{model.__name__} columns changed: model has {sorted(actual)}, "
                f"bench loads {sorted(columns)}; update bench/search.py"
            )


# --- set-up -------------------------------------------------------------------------------


def configure(backend: str, sqlite_path: Path, database_url: str) -> None:
    """Environment like ./dev's test_env, pointed at the bench database, then Django."""
    var_dir = sqlite_path.parent
    var_dir.mkdir(parents=True, exist_ok=True)
    url = database_url if backend == "postgres" else f"sqlite:///{sqlite_path.resolve()}"
    os.environ.update(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-only-secret-key-not-for-production",
            "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
            "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
            "COPILOT_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "copilot.settings",
        }
    )
    for name in ("DEBUG", "VIDEODB_API_KEY", "VIDEODB_BASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()


def admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def schema_fingerprint() -> str:
    """The migrations a bench database was built with, as ``name:hash`` pairs."""
    return " ".join(
        f"{path.stem}:{fingerprint(path)}"
        for path in sorted((ROOT / "sessions_app" / "migrations").glob("0*.py"))
    )


def schema_extends(stored: str) -> bool:
    """Whether today's migrations are the stored ones plus new ones: ``migrate`` brings such a
    database up to date in place (a new index is built over the loaded rows), while an edited
    or removed migration means the corpus was built on another schema and is loaded again."""
    return set(stored.split()) <= set(schema_fingerprint().split())


def code_fingerprints() -> str:
    """Which search code the numbers belong to (the app is being worked on)."""
    app = ROOT / "sessions_app" / "history"
    return (
        f"search.py {fingerprint(app / 'search.py')}, "
        f"search_text.py {fingerprint(app / 'search_text.py')}, "
        f"migrations {fingerprint(*sorted((ROOT / 'sessions_app' / 'migrations').glob('0*.py')))}"
    )


def stored_corpus(backend: str, sqlite_path: Path, database_url: str) -> dict | None:
    """What the bench database holds (from its bench_search_meta table), if anything."""
    query = "SELECT segments, seed, version, schema, load_seconds FROM bench_search_meta"
    try:
        if backend == "postgres":
            import psycopg

            with psycopg.connect(database_url, connect_timeout=5) as conn:
                row = conn.execute(query).fetchone()
        else:
            import sqlite3

            if not sqlite_path.exists():
                return None
            with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True) as conn:
                row = conn.execute(query).fetchone()
    except Exception:  # no database, no table: nothing reusable
        return None
    if row is None:
        return None
    return dict(zip(("segments", "seed", "version", "schema", "load_seconds"), row, strict=True))


def fresh_database(backend: str, sqlite_path: Path, database_url: str) -> None:
    if backend == "postgres":
        import psycopg

        admin, name = admin_url(database_url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)


def drop_database(backend: str, sqlite_path: Path, database_url: str) -> None:
    from django.db import connections

    connections.close_all()
    if backend == "postgres":
        import psycopg

        admin, name = admin_url(database_url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)


def make_people() -> list[tuple[int, int, int, int]]:
    """100 users, 10 sessions each (interleaved in time), a mic and a system audio stream
    per session, through the ORM. Returns (session id, mic id, system id, start_ms)."""
    from datetime import UTC, datetime, timedelta

    from sessions_app.models import CaptureSession, RTStream, User

    users = [
        User(username=f"bench{u:03d}", email=f"bench{u:03d}@example.com") for u in range(USERS)
    ]
    for user in users:
        user.set_unusable_password()
    users = User.objects.bulk_create(users)
    sessions = []
    for s in range(SESSIONS):
        start = datetime.fromtimestamp((BASE_MS + s * SESSION_GAP_MS) / 1000, tz=UTC)
        sessions.append(
            CaptureSession(
                owner=users[s % USERS],
                title=f"Bench meeting {s}",
                videodb_id=f"cap-bench-{s}",
                status=CaptureSession.Status.EXPORTED,
                created_at=start,
                started_at=start,
                ended_at=start + timedelta(hours=3),
            )
        )
    sessions = CaptureSession.objects.bulk_create(sessions, batch_size=500)
    streams = []
    for s, session in enumerate(sessions):
        for name, kind in (("mic:default", "mic"), ("system_audio:default", "system_audio")):
            streams.append(
                RTStream(
                    session=session,
                    videodb_id=f"rts-bench-{s}-{kind}",
                    name=name,
                    kind=kind,
                    media_types=["audio"],
                )
            )
    streams = RTStream.objects.bulk_create(streams, batch_size=500)
    return [
        (session.pk, streams[2 * s].pk, streams[2 * s + 1].pk, BASE_MS + s * SESSION_GAP_MS)
        for s, session in enumerate(sessions)
    ]


def progress(done: int, total: int, began: float) -> None:
    elapsed = time.perf_counter() - began
    print(
        f"  loaded {done:,}/{total:,} segments in {elapsed:.0f} s ({done / elapsed:,.0f}/s)",
        file=sys.stderr,
        flush=True,
    )


def load_postgres(database_url: str, segments: int, seed: int, people) -> dict[str, float]:
    import psycopg

    from sessions_app.models import SearchEntry, TranscriptSegment

    seg_table, ent_table = TranscriptSegment._meta.db_table, SearchEntry._meta.db_table
    timings: dict[str, float] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Non-unique indexes are cheaper to build once than to maintain row by row (the GIN
        # index most of all); their definitions come from the migrated schema itself.
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.tablename IN (%s, %s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = to_regclass(quote_ident(i.indexname)))",
            (seg_table, ent_table),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        began = time.perf_counter()
        conn.autocommit = False
        conn.execute("SET synchronous_commit = off")
        seg_copy = f"COPY {seg_table} ({', '.join(SEGMENT_COLUMNS)}) FROM STDIN"
        ent_copy = f"COPY {ent_table} ({', '.join(ENTRY_COLUMNS)}) FROM STDIN"
        done = 0
        for chunk in generate(segments, seed, people):
            seg_lines, ent_lines = [], []
            for row in chunk:
                sid, session, stream, channel, text, start, end, seq, created, day, norm, terms = (
                    row
                )
                seg_lines.append(
                    f"{sid}\t{session}\t{stream}\t{text}\tt\t{start}\t{end}\t{seq}\t"
                    f"{created}\t{created}\n"
                )
                ent_lines.append(
                    f"{sid}\t{session}\t{stream}\tspeech\t{sid}\t\\N\t\\N\t\\N\t{channel}\t{start}\t"
                    f"{end}\t{day}\t{norm}\t{terms}\n"
                )
            with conn.cursor() as cur:
                with cur.copy(seg_copy) as copy:
                    copy.write("".join(seg_lines).encode())
                with cur.copy(ent_copy) as copy:
                    copy.write("".join(ent_lines).encode())
            conn.commit()
            done += len(chunk)
            if done % (CHUNK * 10) == 0 or done == segments:
                progress(done, segments, began)
        timings["rows"] = time.perf_counter() - began
        conn.autocommit = True
        for table in (seg_table, ent_table):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        began = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        timings["indexes"] = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - began
    return timings


def load_sqlite(path: Path, segments: int, seed: int, people) -> dict[str, float]:
    import sqlite3

    from sessions_app.models import SearchEntry, TranscriptSegment

    seg_table, ent_table = TranscriptSegment._meta.db_table, SearchEntry._meta.db_table
    timings: dict[str, float] = {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-1000000",
                       "temp_store=MEMORY", "foreign_keys=ON"):  # fmt: skip
            conn.execute(f"PRAGMA {pragma}")
        seg_sql = (
            f"INSERT INTO {seg_table} ({', '.join(SEGMENT_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(SEGMENT_COLUMNS))})"
        )
        ent_sql = (
            f"INSERT INTO {ent_table} ({', '.join(ENTRY_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})"
        )
        began = time.perf_counter()
        done = 0
        for chunk in generate(segments, seed, people):
            conn.execute("BEGIN")
            conn.executemany(
                seg_sql,
                [
                    (sid, session, stream, text, 1, start, end, seq, created, created)
                    for sid, session, stream, _, text, start, end, seq, created, *_ in chunk
                ],
            )
            # The migration's AFTER INSERT trigger adds every entry to the FTS5 table.
            conn.executemany(
                ent_sql,
                [
                    (sid, session, stream, "speech", sid, None, None, None, channel, start, end,
                     day, norm, terms)
                    for sid, session, stream, channel, _, start, end, _, _, day, norm, terms
                    in chunk
                ],
            )  # fmt: skip
            conn.execute("COMMIT")
            done += len(chunk)
            if done % (CHUNK * 10) == 0 or done == segments:
                progress(done, segments, began)
        timings["rows"] = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        timings["analyze"] = time.perf_counter() - began
    finally:
        conn.close()
    return timings


def write_meta(segments: int, seed: int, load_seconds: float) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_search_meta")
        cur.execute(
            "CREATE TABLE bench_search_meta (segments bigint, seed integer, version integer, "
            "schema text, load_seconds double precision)"
        )
        cur.execute(
            "INSERT INTO bench_search_meta VALUES (%s, %s, %s, %s, %s)",
            [segments, seed, VERSION, schema_fingerprint(), load_seconds],
        )


def verify_sample(segments: int, seed: int) -> str | None:
    """Entries equal what the app's own ``search._entry`` builds for their segment: None,
    or the first difference."""
    from sessions_app.history import search
    from sessions_app.models import SearchEntry, TranscriptSegment

    fields = ("session_id", "stream_id", "kind", "channel", "start_ms", "end_ms", "day", "text",
              "terms")  # fmt: skip
    ids = random.Random(seed).sample(range(1, segments + 1), min(200, segments))
    stored = SearchEntry.objects.in_bulk([*ids], field_name="segment_id")
    for segment in TranscriptSegment.objects.filter(pk__in=ids).select_related("stream"):
        expected, actual = search._entry(segment), stored[segment.pk]
        for name in fields:
            if getattr(expected, name) != getattr(actual, name):
                return (
                    f"segment {segment.pk}: stored {name}={getattr(actual, name)!r}, "
                    f"the app writes {getattr(expected, name)!r}"
                )
    return None


def database_size(backend: str, sqlite_path: Path) -> str:
    from django.db import connection

    from sessions_app.models import SearchEntry, TranscriptSegment

    mb = 1024 * 1024
    seg, ent = TranscriptSegment._meta.db_table, SearchEntry._meta.db_table
    with connection.cursor() as cur:
        if backend == "postgres":
            cur.execute(
                "SELECT pg_database_size(current_database()), pg_total_relation_size(%s), "
                "pg_total_relation_size(%s), pg_relation_size(%s), "
                "coalesce(pg_relation_size(to_regclass('sessions_app_searchentry_tsv_idx')), 0)",
                [seg, ent, ent],
            )
            db, seg_total, ent_total, ent_heap, gin = cur.fetchone()
            return (
                f"database {db / mb:,.0f} MB: segments {seg_total / mb:,.0f} MB, "
                f"entries {ent_total / mb:,.0f} MB (heap {ent_heap / mb:,.0f} MB, "
                f"GIN {gin / mb:,.0f} MB)"
            )
        cur.execute(
            "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s "
            "JOIN sqlite_schema m ON m.name = s.name GROUP BY m.tbl_name"
        )
        sizes = dict(cur.fetchall())
    fts = sum(v for k, v in sizes.items() if k.startswith(f"{ent}_fts"))
    return (
        f"file {sqlite_path.stat().st_size / mb:,.0f} MB: segments {sizes.get(seg, 0) / mb:,.0f}"
        f" MB, entries {sizes.get(ent, 0) / mb:,.0f} MB, FTS5 {fts / mb:,.0f} MB"
        " (tables with their indexes)"
    )


# --- measuring ----------------------------------------------------------------------------

QUERIES = {
    "common": ["yeah", "think", "need", "team", "meeting", "customer"],
    "phrase": ['"next week"', '"follow up"', '"action item"', '"next quarter"', '"annual plan"'],
    "prefix": ["pric*", "deploy*", "integr*", "onboard*", "sched*", "con*"],
    "words": ["customer update", "team meeting plan", "release deadline", "budget review",
              "sales demo feedback", "project data"],
    "or/not": ["pricing OR discount", "deploy* OR rollout", "meeting -customer",
               "yeah -think", "pric* -contract", "budget OR forecast -quarter"],
}  # fmt: skip
TARGET_P95_MS = 20.0  # issue 15: every query type, at 5 M lines, on both databases
COLUMNS = ("search", "facets", "naive")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def plain(query: str) -> str:
    """What the naive baseline looks for: the words as typed, without quotes or star (only
    the first word of a query with OR or -word: icontains has no operators)."""
    text = query.replace('"', "").replace("*", "")
    return text.split()[0] if " OR " in text or " -" in text else text


def naive(query: str, ids: list[int]):
    from sessions_app.models import TranscriptSegment

    return TranscriptSegment.objects.filter(
        session_id__in=ids, text__icontains=plain(query), is_final=True
    ).order_by("-start_ms")


def run_one(query: str, ids: list[int]) -> tuple[float, float, float]:
    """ms of: the search page's query (capped count, first page, snippets), the facets it
    loads after (every hit counted), and the naive baseline (icontains page and count)."""
    from sessions_app.history import search, search_text

    began = time.perf_counter()
    search.search(search_text.parse(query), ids)
    page = time.perf_counter() - began
    began = time.perf_counter()
    search.facet_counts(search_text.parse(query), ids)
    facets = time.perf_counter() - began
    began = time.perf_counter()
    qs = naive(query, ids)
    list(qs[:20])
    qs.count()
    baseline = time.perf_counter() - began
    return page * 1000, facets * 1000, baseline * 1000


def explain(backend: str, query: str, ids: list[int]) -> None:
    """The plans of the statements search.search runs for ``query`` (captured as it runs
    them), then of the naive baseline's page."""
    from django.db import connection, transaction

    from sessions_app.history import search, search_text

    statements: list[tuple[str, tuple, bool]] = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        search.search(search_text.parse(query), ids)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if backend == "postgres" else "EXPLAIN QUERY PLAN "
    # One transaction: a SET LOCAL search sends is run as it is (EXPLAIN takes no SET) and
    # holds for the statements after it, until search's own transaction ended (RESET ALL).
    with transaction.atomic(), connection.cursor() as cur:
        for n, (sql, params, in_transaction) in enumerate(statements, 1):
            head = f"{sql[:160]}{'…' if len(sql) > 160 else ''}"
            print(f"--- {query}: search.search statement {n}: {head}")
            if sql.lstrip().upper().startswith("SET "):
                cur.execute(sql, params)
                continue
            if backend == "postgres" and not in_transaction:
                cur.execute("RESET ALL")
            cur.execute(prefix + sql, params)
            for row in cur.fetchall():
                print("   ", " ".join(str(c) for c in row))
    print(f"--- {query}: naive first page")
    print(naive(query, ids)[:20].explain(**({"analyze": True} if backend == "postgres" else {})))


def hits_file(args) -> Path:
    return Path(args.sqlite_path).parent / f"search-hits-{args.segments}-{args.seed}.json"


def check_hits(args, backend: str, pages: dict[str, list[int]]) -> None:
    """Record this backend's first page of every query, and compare with the other
    backend's, if it ran on the same corpus: the ids are the loader's, equal on both."""
    import json

    path = hits_file(args)
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[backend] = pages
    path.write_text(json.dumps(stored))
    other = "sqlite" if backend == "postgres" else "postgres"
    if other not in stored:
        print(f"hit ids: recorded in {path}; run --backend {other} to compare the databases")
        return
    theirs = stored[other]
    shared = [q for q in pages if q in theirs]
    differ = [q for q in shared if pages[q] != theirs[q]]
    print(
        f"hit ids, first page, {backend} vs {other}: {len(shared) - len(differ)}/{len(shared)}"
        " queries agree" + (f"; DIFFER: {', '.join(differ)}" if differ else "")
    )


def measure(args, backend: str) -> None:
    from sessions_app.history import search, search_text
    from sessions_app.models import TranscriptSegment, User
    from sessions_app.viewers import access

    _, _, rare = vocabulary(args.seed)
    everyone = list(User.objects.filter(username__startswith="bench").order_by("pk"))
    step = len(everyone) / args.users
    users = [everyone[int(step * k + step / 2)] for k in range(args.users)]
    scopes = []
    for user in users:
        # The sessions this user may view, exactly as the history pages ask for them.
        request = SimpleNamespace(user=user, session={})
        scopes.append((user, list(access.viewable(request).values_list("pk", flat=True))))

    plan: dict[str, list[tuple[str, object, list[int]]]] = {"rare": []}
    for user, ids in scopes:  # for each user, a code name said in one of their meetings
        taken = {q for q, _, _ in plan["rare"]}
        for word in rare:
            if word not in taken and search.matches(search_text.parse(word), ids).exists():
                plan["rare"].append((word, user, ids))
                break
    for kind, queries in QUERIES.items():
        plan[kind] = [
            (q, *scopes[k % len(scopes)]) for k, q in enumerate(queries[: max(1, args.users)])
        ]

    per_user = TranscriptSegment.objects.filter(session_id__in=scopes[0][1]).count()
    rows, details, pages, unlike_today = [], [], {}, []
    for kind, pairs in plan.items():
        counts = []
        for query, user, ids in pairs:
            for _ in range(args.warmup):
                run_one(query, ids)
            parsed = search_text.parse(query)
            results = search.search(parsed, ids)
            total = search.facet_counts(parsed, ids).total
            counts.append((total, results.total_label, naive(query, ids).count()))
            shown = [h.entry.pk for h in results.hits]
            pages[f"{query} @{user.username}"] = shown
            # Today's hits: every match, newest first (the query the page ran before the
            # cap), its first page. The capped search must list the very same.
            if shown != list(search.matches(parsed, ids)[: search.PAGE_SIZE].values_list(
                "pk", flat=True
            )):  # fmt: skip
                unlike_today.append(query)
        samples: dict[int, list[tuple[float, float, float]]] = {i: [] for i in range(len(pairs))}
        for run in range(args.runs):
            i = run % len(pairs)
            samples[i].append(run_one(pairs[i][0], pairs[i][2]))
        every = [s for runs in samples.values() for s in runs]
        cols = list(zip(*every, strict=True))
        hits = sorted(c[0] for c in counts)
        rows.append(
            (kind, len(pairs), hits,
             *[(percentile(list(c), 50), percentile(list(c), 95)) for c in cols])
        )  # fmt: skip
        for i, (query, user, _) in enumerate(pairs):
            cols_i = list(zip(*samples[i], strict=True))
            details.append(
                (kind, query, user.username, *counts[i],
                 *[percentile(list(c), 50) for c in cols_i])
            )  # fmt: skip
        if args.explain:
            explain(backend, pairs[0][0], pairs[0][2])

    print()
    print(
        f"target: the search page's query (capped count + first page) p95 <= "
        f"{TARGET_P95_MS:.0f} ms for every query type; naive is the bare baseline measured "
        "alongside (icontains page + count), facets what the page loads after its hits"
    )
    print(
        f"{'query type':<10} {'queries':>7} {'hits/user min-med-max':>22} {'share':>6} "
        f"{'search p50/p95 ms':>18} {'target':>6} {'facets p50/p95':>16} "
        f"{'naive p50/p95 ms':>17} {'search/naive p95':>16}"
    )
    worst = 0.0
    for kind, n, hits, page, facets, bare in rows:
        share = hits[len(hits) // 2] / per_user
        worst = max(worst, page[1])
        print(
            f"{kind:<10} {n:>7} {f'{hits[0]:,}-{hits[len(hits) // 2]:,}-{hits[-1]:,}':>22} "
            f"{share:>6.1%} {f'{page[0]:.1f} / {page[1]:.1f}':>18} "
            f"{'met' if page[1] <= TARGET_P95_MS else 'MISSED':>6} "
            f"{f'{facets[0]:.1f} / {facets[1]:.1f}':>16} {f'{bare[0]:.1f} / {bare[1]:.1f}':>17} "
            f"{page[1] / bare[1]:>16.2f}"
        )
    print()
    print("per query (p50 ms over its runs):")
    print(
        f"  {'type':<7} {'query':<28} {'user':<9} {'hits':>7} {'shown':>6} {'naive n':>8} "
        f"{'search':>8} {'facets':>8} {'naive':>8}"
    )
    for kind, query, user, total, shown, naive_total, page, facets, bare in details:
        print(
            f"  {kind:<7} {query:<28} {user:<9} {total:>7,} {shown:>6} {naive_total:>8,} "
            f"{page:>8.1f} {facets:>8.1f} {bare:>8.1f}"
        )
    print(
        "\nshare = median hits / the user's segments; shown = the count on the page (capped at "
        f"{search.COUNT_CAP:,}); naive n = the icontains count (substring, unstemmed, so it "
        "differs from hits)"
    )
    print(
        "first page equal to today's (every match sorted, newest first): "
        + ("all queries" if not unlike_today else "NOT for " + ", ".join(unlike_today))
    )
    check_hits(args, backend, pages)
    print(
        f"search p95, worst query type: {worst:.1f} ms: target {TARGET_P95_MS:.0f} ms "
        + ("met" if worst <= TARGET_P95_MS else "MISSED")
    )


# --- main ---------------------------------------------------------------------------------


def run_backend(args, backend: str) -> None:
    sqlite_path = Path(args.sqlite_path)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    stored = stored_corpus(backend, sqlite_path, database_url) if args.reuse else None
    wanted = {
        "segments": args.segments,
        "seed": args.seed,
        "version": VERSION,
    }
    reuse = (
        stored is not None
        and all(stored[k] == v for k, v in wanted.items())
        and schema_extends(stored["schema"])
    )
    if not reuse:
        fresh_database(backend, sqlite_path, database_url)
    configure(backend, sqlite_path, database_url)
    from django.core.management import call_command
    from django.db import connection, connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    call_command("migrate", verbosity=0, interactive=False)
    check_columns()
    if reuse and (problem := verify_sample(args.segments, args.seed)):
        print(f"not reusing the bench database, loading it again: {problem}", flush=True)
        connections.close_all()
        again = [a for a in sys.argv[1:] if a != "--reuse"]
        os.execv(sys.executable, [sys.executable, __file__, *again])  # noqa: S606 -- this script
    label = (
        f"PostgreSQL {connection.pg_version // 10000}"
        if backend == "postgres"
        else f"SQLite {connection.Database.sqlite_version}"
    )
    print(
        f"== {label}: {args.segments:,} segments, {SESSIONS:,} sessions, {USERS} users "
        f"({args.segments // USERS:,} segments per user), {os.cpu_count()} cores"
    )
    print(f"app code: {code_fingerprints()}")
    if reuse:
        print(f"reused the bench database (it took {stored['load_seconds']:.0f} s to load)")
        if pending:
            # migrate above applied the new migrations to the loaded rows: fresh statistics
            # for what they built, and the meta row now names today's schema.
            with connection.cursor() as cur:
                cur.execute("ANALYZE")
            write_meta(args.segments, args.seed, stored["load_seconds"])
            print(f"applied {len(pending)} newer migration(s) to it in place, then ANALYZE")
    else:
        began = time.perf_counter()
        people = make_people()
        connections.close_all()
        if backend == "postgres":
            timings = load_postgres(database_url, args.segments, args.seed, people)
        else:
            timings = load_sqlite(sqlite_path, args.segments, args.seed, people)
        load_seconds = time.perf_counter() - began
        write_meta(args.segments, args.seed, load_seconds)
        print(
            f"loaded in {load_seconds:.0f} s ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + f"): {args.segments / load_seconds:,.0f} segments/s"
        )
    if problem := verify_sample(args.segments, args.seed):
        raise SystemExit(f"the loaded entries differ from the app's: {problem}")
    print(database_size(backend, sqlite_path))
    print(f"{args.users} users, warm-up {args.warmup} pass(es), {args.runs} timed runs per type")
    measure(args, backend)
    rerun = [a for a in sys.argv[1:] if a != "--drop"]
    if "--backend" in rerun:
        rerun[rerun.index("--backend") + 1] = backend
    else:
        rerun += ["--backend", backend]
    if "--reuse" not in rerun:
        rerun.append("--reuse")
    env = f"BENCH_DATABASE_URL={database_url} " if database_url != DEFAULT_DB else ""
    print(
        f"rerun: {env if backend == 'postgres' else ''}.venv/bin/python bench/search.py "
        + " ".join(rerun)
    )
    if args.drop:
        drop_database(backend, sqlite_path, database_url)
        print("dropped the bench database")
    elif backend == "postgres":
        print(f"keep or drop: psql {admin_url(database_url)[0]} -c "
              f"'DROP DATABASE {admin_url(database_url)[1]}'")  # fmt: skip
    else:
        print(f"keep or delete: rm {sqlite_path}*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--users", type=int, default=6, help="users (and queries) per type")
    parser.add_argument("--runs", type=int, default=36, help="timed runs per query type")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per query first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep a loaded bench database")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--drop", action="store_true", help="remove the bench database after")
    parser.add_argument("--sqlite-path", default=str(DEFAULT_SQLITE))
    args = parser.parse_args()
    if args.segments < SESSIONS * 2:
        parser.error(f"--segments must be at least {SESSIONS * 2}")
    if args.backend == "both":
        # One process per backend: Django's default database is fixed at set-up, and one
        # heavy process at a time.
        for backend in ("postgres", "sqlite"):
            command = [sys.executable, __file__, *sys.argv[1:]]
            if "--backend" in command:
                command[command.index("--backend") + 1] = backend
            else:
                command += ["--backend", backend]
            subprocess.run(command, check=True)
        return
    run_backend(args, args.backend)


if __name__ == "__main__":
    main()
