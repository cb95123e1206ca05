"""Whole-split runs: explain every image of a split on this machine or a Ray cluster, store the maps as Parquet
with a manifest, and find the model's strategies in them (spectral relevance analysis)."""
from core.runs.plan import PART_SIZE, SCHEMA_VERSION, SLOW_COST, SLOW_LIMIT, RunPlan, select_ids
from core.runs.split import ENGINES, TARGETS, describe_estimate, explain_split, plan_run
from core.runs.store import load_table, maps_of, read_manifest

__all__ = ["ENGINES", "PART_SIZE", "SCHEMA_VERSION", "SLOW_COST", "SLOW_LIMIT", "TARGETS", "RunPlan",
           "describe_estimate", "explain_split", "load_table", "maps_of", "plan_run", "read_manifest", "select_ids"]
