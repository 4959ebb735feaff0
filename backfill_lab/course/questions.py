"""The quick test's questions: fifteen single-choice questions on the key ideas of the guide.

Most of them hand the learner something to read, as on call: a grid, a ledger or a plan, and ask
what is wrong with it. Every wrong option is a mistake the notebooks show happening. The
questions are here; the answers are not (they live only in ``solutions/quick_test.ipynb``; see
:mod:`backfill_lab.course.answers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

__all__ = ["LETTERS", "QUESTIONS", "Question", "question_order"]

#: the letters of a question's four options
LETTERS: tuple[str, ...] = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Question:
    """One single-choice question: an id (``q1``), the prompt, four options a-d, and what the
    learner reads to answer it (``exhibit``: a grid, ledger rows or a plan, as text), if any."""

    id: str
    topic: str
    prompt: str
    options: tuple[str, str, str, str]
    exhibit: str = ""

    def text(self) -> str:
        """The prompt, with the exhibit below it (indented) when there is one."""
        shown = "".join(f"\n      {line}" for line in self.exhibit.strip("\n").splitlines())
        return self.prompt + shown

    def html(self) -> str:
        """The prompt as HTML, with the exhibit in a monospace block."""
        block = (f"<pre style='margin:4px 0 4px 1em;line-height:1.25'>"
                 f"{escape(self.exhibit.strip(chr(10)))}</pre>") if self.exhibit else ""
        return escape(self.prompt) + block

    def choices(self) -> list[tuple[str, str]]:
        """``[("a", text), ...]``."""
        return list(zip(LETTERS, self.options, strict=True))


GRID_OUTAGE = """
2024-12     1      8
       raw  ##XXX#######
   staging  ##...#######
  features  ##...XXXXXX#
legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
"""
GRID_QUIET_BUG = """
2024-12     1      8
       raw  ########
   staging  ########
  features  ##!#####
legend: # ok  . missing  X failed  ! invalid  ~ stale  > running
"""
LEDGER_APPEND = """
backfill_id  layer   partition  mode    status   rows
refill-1     raw     2024-12-01 append  success  1204
refill-2     raw     2024-12-01 append  success  1204
partition_counts("raw")["2024-12-01"] == 2408
"""
LEDGER_OVERLOAD = """
backfill_id  partition   attempt  status  error
dec-raw      2024-12-05  3        failed  warehouse overloaded: 9 concurrent writes for a
                                          capacity of 4; throttled write failed after 0.05s
dec-raw      2024-12-06  3        failed  warehouse overloaded: 8 concurrent writes ...
(12 of 31 days failed, 19 succeeded; concurrency: 31, retries: 2)
"""
LEDGER_VERSIONS = """
backfill_id     layer     partition   status   code_version
recompute-dec   features  2024-12-15  success  v1.4.2
recompute-dec   features  2024-12-16  success  v1.4.2
recompute-dec   features  2024-12-17  success  v1.4.2
recompute-dec   features  2024-12-18  success  v2.0.0
recompute-dec   features  2024-12-19  success  v2.0.0
recompute-dec   features  2024-12-20  success  v2.0.0
recompute-dec   features  2024-12-21  success  v2.0.0
"""
PLAN_ORDER = """
backfill:
  start: 2024-12-01
  end: 2024-12-31
  order: descending
  layers: [features, staging, raw]
  concurrency: 2
  retries: 2
  mode: overwrite
"""
PLAN_LATE = """
schedule: daily 02:00 UTC
backfill: {start: 2024-12-01, end: 2024-12-14, mode: merge, merge_keys: [entity_id, date]}
late_data: {watermark_delay: 0d, reprocess_window: 1}
"""
PLAN_TARGET = """
backfill:
  partitions: 2025-01-10..2025-01-14
  layers: [features]
  mode: overwrite
  target: features_v2
validations: {drift: {max_psi: 0.2, reference_window: 7}, null_rate: {max: 0.01},
              unique_keys: [entity_id, date]}
rollback: {strategy: previous_version}
"""

QUESTIONS: tuple[Question, ...] = (
    Question("q1", "key terms: catchup",
             "The scheduler was paused for three nights. It is switched back on with catchup "
             "on. What does it run?",
             ("Only tonight's interval: the three missed nights wait for someone's backfill.",
              "Every partition again, from the first day its schedule is responsible for.",
              "Each interval it missed since its last success, oldest first, one per day.",
              "The three missed nights at once, newest first, so today's data is fresh soon.")),
    Question("q2", "key terms: idempotency",
             "Which of these ways to write a day's partition is idempotent?",
             ("Delete the partition and insert its rows again, both in one transaction.",
              "Insert the rows, each tagged with the run's id so reruns can be told apart.",
              "Append the rows, and run a deduplication job at the end of every month.",
              "Append the rows, but only when the ledger says the previous attempt failed.")),
    Question("q3", "read a grid · common mistake: ignoring dependencies",
             "The grid after a three-day source outage (features read a trailing 7-day window "
             "of staging). Which backfill refills it with the fewest rewrites?",
             ("raw, staging and features for 12-03..12-11: every column with a broken box.",
              "raw and staging for 12-03..12-05: features rebuild themselves tomorrow night.",
              "features for 12-03..12-11 only: features are what the readers query.",
              "All three layers for 12-03..12-05, then features only for 12-06..12-11."),
             GRID_OUTAGE),
    Question("q4", "read a ledger · common mistake: non-idempotent writes",
             "Someone reran a refill of raw \"to be sure\". The ledger and the row count say:",
             ("The second run failed halfway and left a partial partition behind.",
              "Both runs appended: the partition now holds every event twice.",
              "Nothing is wrong: the second run replaced the rows of the first.",
              "Late events arrived in between, so the second run found twice as many."),
             LEDGER_APPEND),
    Question("q5", "read a ledger · design step: concurrency",
             "A 31-day backfill on a warehouse that takes 4 writes at once ended like this. "
             "What do you change before you resume it?",
             ("Raise retries to 10, so every throttled write gets through in the end.",
              "Cap concurrency within what the nightly jobs leave of the 4 write slots.",
              "Keep 31 and add a longer backoff: parallelism is what makes it fast.",
              "Switch to append, which does not hold a write slot as long as overwrite."),
             LEDGER_OVERLOAD),
    Question("q6", "read a plan · design step: order",
             "The pipeline is raw -> staging -> features, and features read 7 days of "
             "staging. What is wrong with this plan?",
             ("Nothing: overwrite makes every step harmless, so the order does not matter.",
              "retries: 2 is too few for a backfill of a whole month of three layers.",
              "The end date should be the day after the last one, as dbt's flag wants.",
              "It runs downstream first and newest first: features read unbuilt staging."),
             PLAN_ORDER),
    Question("q7", "validation checklist: drift",
             "A bad config multiplied amount_7d by 1.8 on two days. Row counts, nulls and "
             "keys look normal. Which check catches it?",
             ("Distribution drift against the days before it, with a PSI threshold.",
              "Row count within bounds taken from the healthy days around it.",
              "Key uniqueness on (entity_id, date), which every partition must keep.",
              "A downstream read: the consumer's query fails on the changed column.")),
    Question("q8", "read a grid · key terms: backfill",
             "Every nightly run of this week reported success. What does the grid say, and "
             "what repairs it?",
             ("Nothing is wrong: the runs succeeded, and catchup would rerun any failure.",
              "raw of 12-03 failed, and catchup will rerun it at 02:00 tonight.",
              "features of 12-03 holds rows a check rejected: backfill that one box.",
              "12-03 is suspect as a whole: rebuild its whole column, raw first."),
             GRID_QUIET_BUG),
    Question("q9", "late data: watermark (D+N)",
             "Events arrive up to 48 hours late. The job runs daily at 02:00 UTC with "
             "watermark_delay 2d (D+2). Which run first processes 2025-03-10?",
             ("02:00 on 2025-03-11, the first scheduled run after the day closes.",
              "02:00 on 2025-03-12, two days after the day starts.",
              "00:00 on 2025-03-13, the moment two days have passed.",
              "02:00 on 2025-03-13, the first run two days after it closes.")),
    Question("q10", "read a plan · late data: rolling reprocessing",
             "Events arrive up to 48 hours late. What does this late-data policy get wrong?",
             ("Day D is last processed 26 h after it closes: later events are never counted.",
              "Nothing: merge picks up each late event whenever it happens to arrive.",
              "It counts late events twice, because the window processes each day twice.",
              "Only the events of the range's last day, which no later run picks up."),
             PLAN_LATE),
    Question("q11", "read a ledger · common mistake: mixing code versions",
             "One backfill, one week of features. What is wrong with it?",
             ("Nothing: every step succeeded, and the later days got the newer code.",
              "Its concurrency was too high, so some days were built twice.",
              "One range, two code versions: the feature's definition changes mid-week.",
              "The later days are stale: they were built before their upstream."),
             LEDGER_VERSIONS),
    Question("q12", "design step: switchover",
             "You recomputed 90 days into features_v2 beside features_v1; readers query the "
             "view features. When do readers move to v2?",
             ("As soon as the backfill reports success for every one of the 90 days.",
              "Once each partition passed validation and a canary: one atomic switch.",
              "Day by day as each partition lands, so readers get fixed data soonest.",
              "Before the backfill starts, so the view shows partitions as they land.")),
    Question("q13", "design step: lineage",
             "Months later someone asks why December's features changed, on whose ticket, "
             "and from which inputs. What answers all three?",
             ("The backfill id, audit tags on every write, and the ledger's rows.",
              "The orchestrator's task logs, for as long as they are kept.",
              "The row counts per day in the table, before and after the change.",
              "The plan file in the repository, which says what was meant to run.")),
    Question("q14", "read a plan · common mistake: no way back",
             "The mini challenge: fix 5 drifted days of features, which readers query through "
             "the view features. What is wrong with this plan?",
             ("Nothing: writing beside features_v1 already is the way back to the old data.",
              "It should overwrite features_v1 in place, to touch fewer tables.",
              "Readers are never switched to features_v2: the fix never reaches them.",
              "drift needs a baseline table: reference_window cannot work here."),
             PLAN_TARGET),
    Question("q15", "validation checklist: key uniqueness",
             "A retry wrote 10 % of one partition's rows a second time; its row count is "
             "still within bounds. Which check flags it?",
             ("Row count within the bounds of the healthy days.",
              "Key uniqueness on (entity_id, date).",
              "Drift with a PSI threshold of 0.2.",
              "The null-rate check on every column.")),
)


def question_order(qid: str) -> tuple[int, str]:
    """``q2`` before ``q10`` (keys read from JSON come sorted as text)."""
    digits = qid.lstrip("q")
    return (int(digits) if digits.isdigit() else 10**6, qid)
