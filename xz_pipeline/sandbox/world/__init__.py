"""The generated world: deterministic organisations from a seed, rendered by each emulator into its own shapes.

The public model is the records in `model` and the generation entry points in `generate`; the builders
(books, crm, customers, ledger, ...) are this package's internals.
"""

from xz_pipeline.sandbox.world.generate import (
    generate,
    generation_stats,
    manifest_document,
    record_counts,
    timed_generate,
    write_manifest,
)
from xz_pipeline.sandbox.world.model import *  # noqa: F403 (the records are the package's public model)
from xz_pipeline.sandbox.world.model import DISCREPANCY_KINDS, SIZES, CustomerTruth, Injection, Size, World

__all__ = [
    "DISCREPANCY_KINDS",
    "SIZES",
    "CustomerTruth",
    "Injection",
    "Size",
    "World",
    "generate",
    "generation_stats",
    "manifest_document",
    "record_counts",
    "timed_generate",
    "write_manifest",
]
