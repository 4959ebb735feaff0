"""Plans used across the tests: a perfect one per exercise, and one per common mistake."""

from __future__ import annotations

PERFECT_EX1 = """
pipeline: daily_features
code_version: v1.4.2
backfill:
  start: 2024-12-01
  end: 2024-12-31
  order: ascending
  layers: [raw, staging, features]
  concurrency: 2
  retries: 2
  mode: overwrite
validations:
  row_count: {min: 900, max: 1100}
  null_rate: {max: 0.01}
  unique_keys: [entity_id, date]
  drift: {max_psi: 0.2}
  downstream_read: true
rollback: {strategy: snapshot}
lineage: {audit_tags: {ticket: INC-1234, owner: data-platform}}
"""
PERFECT_EX2 = """
pipeline: late_features
code_version: v1.4.2
schedule: daily 02:00 UTC
catchup: true
backfill:
  start: 2024-12-01
  end: 2024-12-14
  order: ascending
  layers: [raw, features]
  concurrency: 2
  retries: 2
  mode: merge
  merge_keys: [entity_id, date]
validations:
  null_rate: {max: 0.01}
  unique_keys: [entity_id, date]
  downstream_read: true
rollback: {strategy: snapshot}
lineage: {audit_tags: {ticket: INC-2001, owner: data-platform}}
late_data: {watermark_delay: 2d, reprocess_window: 3}
"""
PERFECT_MINI = """
pipeline: daily_features
code_version: v1.4.2
backfill:
  partitions: 2025-01-10..2025-01-14
  order: ascending
  layers: [features]
  concurrency: 2
  retries: 2
  mode: overwrite
  target: features_v2
validations:
  row_count: {min: 900, max: 1100}
  null_rate: {max: 0.01}
  unique_keys: [entity_id, date]
  drift: {max_psi: 0.2, reference_window: 7}
  downstream_read: true
rollback: {strategy: previous_version}
lineage: {audit_tags: {ticket: INC-3001, owner: data-platform}}
switchover: {view: features, when: validated}
"""


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


GUIDE_SNIPPET = """
schedule: daily 02:00 UTC
catchup: true
backfill:
start: 2024-12-01
end: 2024-12-31
concurrency: 2
retries: 2
mode: overwrite # partition overwrite to ensure idempotent writes
"""

NO_VALIDATIONS = PERFECT_EX1.split("validations:")[0] + "rollback:" + PERFECT_EX1.split(
    "rollback:")[1]

# name -> (exercise, plan, the checklist rules it fails, the outcome checks it fails)
MISTAKES: dict[str, tuple[str, str, set[str], set[str]]] = {
    # the replay's warehouse takes 4 writes at once, like the one the notebooks taught: the
    # excess writes are throttled and fail, so the backfill leaves holes (issue 13)
    "unlimited_parallelism": ("ex1", edit(PERFECT_EX1, "  concurrency: 2\n", ""),
                              {"concurrency"}, {"outcome_complete"}),
    "over_capacity": ("ex1", edit(PERFECT_EX1, "concurrency: 2", "concurrency: 31"),
                      {"concurrency"}, {"outcome_complete"}),
    "append_on_rerun": ("ex1", edit(PERFECT_EX1, "mode: overwrite", "mode: append"),
                        {"idempotent_writes"}, {"outcome_idempotent"}),
    "downstream_before_upstream": ("ex1", edit(PERFECT_EX1, "layers: [raw, staging, features]",
                                               "layers: [features, staging, raw]"),
                                   {"dependencies"}, set()),
    "no_validations": ("ex1", NO_VALIDATIONS, {"validations"}, set()),
    "mixed_code_versions": ("ex1", edit(PERFECT_EX1, "code_version: v1.4.2\n", ""),
                            {"code_version"}, set()),
    "wrong_range": ("ex1", edit(PERFECT_EX1, "end: 2024-12-31", "end: 2024-12-30"),
                    {"range"}, {"outcome_complete"}),
    "descending_order": ("ex1", edit(PERFECT_EX1, "order: ascending", "order: descending"),
                         {"order"}, set()),
    "no_retries": ("ex1", edit(PERFECT_EX1, "retries: 2", "retries: 0"),
                   {"retries"}, {"outcome_complete"}),
    "no_rollback": ("ex1", edit(PERFECT_EX1, "rollback: {strategy: snapshot}\n", ""),
                    {"rollback"}, set()),
    "no_lineage": ("ex1", edit(PERFECT_EX1, "lineage: {audit_tags: {ticket: INC-1234, "
                                            "owner: data-platform}}\n", ""),
                   {"lineage"}, set()),
    "too_wide_target": ("mini_challenge", edit(PERFECT_MINI, "partitions: 2025-01-10..2025-01-14",
                                               "partitions: 2025-01-01..2025-01-31"),
                        {"range"}, set()),
    "mini_without_drift_check": ("mini_challenge", edit(
        PERFECT_MINI, "  drift: {max_psi: 0.2, reference_window: 7}\n", ""),
        {"validations"}, set()),
    "target_without_switchover": ("mini_challenge", edit(
        PERFECT_MINI, "switchover: {view: features, when: validated}\n", ""),
        {"rollback"}, {"outcome_complete"}),
    "d0_watermark": ("ex2", edit(PERFECT_EX2, "watermark_delay: 2d", "watermark_delay: 0d"),
                     {"watermark"}, set()),
    "no_reprocess_window": ("ex2", edit(PERFECT_EX2, "reprocess_window: 3",
                                        "reprocess_window: 0"),
                            {"reprocess_window"}, set()),
    "late_data_append": ("ex2", edit(PERFECT_EX2, "mode: merge", "mode: append"),
                         {"idempotent_writes"}, {"outcome_complete", "outcome_idempotent"}),
    # issue 13: a targeted fix that also rebuilds the healthy layers makes their readers stale
    "rebuilds_healthy_layers": ("mini_challenge", edit(PERFECT_MINI, "layers: [features]",
                                                       "layers: [raw, staging, features]"),
                                {"range"}, set()),
    # issue 13: behind a D+2 watermark one day of reruns no longer covers the lateness again
    "short_reprocess_window": ("ex2", edit(PERFECT_EX2, "reprocess_window: 3",
                                           "reprocess_window: 1"),
                               {"reprocess_window"}, set()),
    # with D+0 and one rerun, late events are missed: incomplete, and not a double write
    "d0_short_window": ("ex2", edit(edit(PERFECT_EX2, "watermark_delay: 2d", "watermark_delay: 0d"),
                                    "reprocess_window: 3", "reprocess_window: 1"),
                        {"watermark", "reprocess_window"}, {"outcome_complete"}),
    # overwrite is idempotent too, but exercise 2 asks for the upsert
    "late_data_overwrite": ("ex2", edit(PERFECT_EX2, "mode: merge", "mode: overwrite"),
                            {"merge_keys"}, set()),
    "wrong_merge_keys": ("ex2", edit(PERFECT_EX2, "merge_keys: [entity_id, date]",
                                     "merge_keys: [entity_id]"),
                         {"merge_keys"}, set()),
}

PERFECT = {"ex1": PERFECT_EX1, "ex2": PERFECT_EX2, "mini_challenge": PERFECT_MINI}
# an equally safe design for the mini challenge: fix in place, with a snapshot to go back to
MINI_IN_PLACE = edit(edit(edit(PERFECT_MINI, "  target: features_v2\n", ""),
                          "previous_version", "snapshot"),
                     "switchover: {view: features, when: validated}\n", "")
