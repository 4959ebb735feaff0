"""The quick test's questions: fifteen single-choice questions, one per key idea of the guide.

The questions are here; the answers are not (they live only in ``solutions/quick_test.ipynb``;
see :mod:`backfill_lab.course.answers`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LETTERS", "QUESTIONS", "Question", "question_order"]

#: the letters of a question's four options
LETTERS: tuple[str, ...] = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Question:
    """One single-choice question: an id (``q1``), the prompt, and four options a-d."""

    id: str
    topic: str
    prompt: str
    options: tuple[str, str, str, str]

    def choices(self) -> list[tuple[str, str]]:
        """``[("a", text), ...]``."""
        return list(zip(LETTERS, self.options, strict=True))


QUESTIONS: tuple[Question, ...] = (
    Question("q1", "key terms: catchup",
             "The scheduler was stopped for three nights. When it starts again with catchup "
             "on, what does it do?",
             ("It rebuilds every partition of the table, from the first day on.",
              "It runs each scheduled interval it missed since its last successful run, "
              "oldest first.",
              "Nothing, until an engineer triggers a backfill for the missed days.",
              "It skips the missed nights and carries on with tonight's run.")),
    Question("q2", "key terms: backfill",
             "What makes a run a backfill rather than a normal scheduled run?",
             ("It always runs every layer of the pipeline.",
              "It rewrites the newest partition only.",
              "Someone triggers it for a chosen range of past partitions.",
              "It reads a partition to check that consumers can still load it.")),
    Question("q3", "key terms: idempotency",
             "A backfill step is idempotent when ...",
             ("it never fails, so it never needs a retry.",
              "it finishes within one schedule interval.",
              "it writes its output to a new table on every run.",
              "running it again leaves the data exactly as one run left it.")),
    Question("q4", "common mistake: non-idempotent writes",
             "A backfill that writes in append mode is run a second time over the same days "
             "(someone reran it to be sure). What do those partitions hold now?",
             ("Every row twice: sums and counts downstream double.",
              "The same rows as before: the warehouse drops the repeated ones.",
              "Only the rows of the second run: append replaces the partition.",
              "Nothing: the second run refuses to start.")),
    Question("q5", "design step: write mode",
             "Each run rebuilds a day's partition from scratch. Which write makes a rerun "
             "harmless?",
             ("Append the new rows and delete old ones at the end of the month.",
              "Overwrite exactly that partition, in one transaction.",
              "Insert the rows with a new run-id column, and keep every version.",
              "Truncate the whole table, then append the day.")),
    Question("q6", "design step: concurrency",
             "A shared warehouse takes 4 concurrent writes and nightly jobs use some of them. "
             "How parallel should a 31-day backfill be?",
             ("31 runs at once, one per partition: it finishes fastest.",
              "As many as the orchestrator's worker pool allows.",
              "Capped within what the warehouse can take, raised only while throughput holds.",
              "Always one at a time: parallel backfills are never safe.")),
    Question("q7", "common mistake: ignoring dependencies",
             "features reads a trailing 7-day window of staging, which reads raw. In what "
             "order do you backfill three layers over a month?",
             ("For each day upstream before downstream (raw, staging, features), oldest "
              "day first.",
              "features for every day first, then staging, then raw.",
              "Newest day first, so today's features are fixed soonest.",
              "Any order: overwrite makes the order irrelevant.")),
    Question("q8", "design step: exact range",
             "The ledger shows raw failed for 03-01..03-03 and features (7-day window) failed "
             "for 03-01..03-09. What do you backfill?",
             ("Every layer for the whole month, to be safe.",
              "features only, for 03-01..03-09.",
              "Every layer for 03-01..03-09.",
              "Every layer for 03-01..03-03, then features only for 03-04..03-09.")),
    Question("q9", "validation checklist",
             "A bad config multiplied one feature column by 1.8 on two days. Row counts, "
             "nulls and keys look normal. Which check catches it?",
             ("Row count within expected bounds.",
              "Feature distribution drift against a baseline.",
              "Key uniqueness.",
              "The null-rate check.")),
    Question("q10", "common mistake: mixing code versions",
             "A release is deployed while your backfill is halfway through. What is the safe "
             "behaviour?",
             ("Carry on: each remaining day uses whatever code is deployed when it runs.",
              "Lower the concurrency so that fewer days run on the new code.",
              "Pin one code version for the whole range: stop rather than mix, then resume "
              "on that version.",
              "Run the remaining days on both versions and keep the larger output.")),
    Question("q11", "late data: watermark",
             "Events reach the warehouse up to 48 hours late and the daily job runs at 02:00 "
             "UTC. When should day D be processed for the first time?",
             ("Once a watermark delay of two days has passed, so its late events can have "
              "arrived.",
              "At 02:00 the morning after D: late events are too few to matter.",
              "Only at the end of the month, when nothing can arrive any more.",
              "Every hour, appending whatever arrived since the last run.")),
    Question("q12", "late data: rolling reprocessing",
             "Why does the nightly job also rerun the last 2-3 partitions, merging on "
             "(entity_id, date)?",
             ("To spread the warehouse load more evenly over the night.",
              "Because append mode cannot write to partitions older than a day.",
              "To recompute features with the newest code version every night.",
              "To pick up stragglers that arrived after the first processing, without "
              "counting any event twice.")),
    Question("q13", "switchover",
             "You recomputed 90 days into features_v2 beside features_v1. When do readers "
             "switch to v2?",
             ("As soon as the backfill reports success.",
              "After every targeted partition passed validation (and a canary comparison), "
              "in one atomic switch you can roll back.",
              "Before the backfill starts, so they see new partitions as they land.",
              "Never: overwrite v1 in place instead, it is simpler.")),
    Question("q14", "design step: lineage",
             "Months later someone asks why December's features changed, who did it and from "
             "which inputs. What answers that?",
             ("The table's size history in the warehouse.",
              "The orchestrator's log files, if they are still kept.",
              "A backfill id, audit tags on every write, and a ledger row per write with its "
              "code version and the upstream partitions it read.",
              "The modification times of the partition files.")),
    Question("q15", "validation checklist",
             "A retry wrote 10 % of one partition's rows a second time. Which check flags "
             "that partition?",
             ("Key uniqueness on (entity_id, date).",
              "Distribution drift with a PSI threshold of 0.2.",
              "The null-rate check.",
              "A downstream read test.")),
)


def question_order(qid: str) -> tuple[int, str]:
    """``q2`` before ``q10`` (keys read from JSON come sorted as text)."""
    digits = qid.lstrip("q")
    return (int(digits) if digits.isdigit() else 10**6, qid)
